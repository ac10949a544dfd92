package worker

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
)

// outage logs a failing dependency once when it starts failing and once
// when it works again, however many calls fail in between.
type outage struct{ down atomic.Bool }

func (o *outage) failed(log *slog.Logger, msg string, err error) {
	if !o.down.Swap(true) {
		log.Warn(msg, "err", err)
	}
}

func (o *outage) ok(log *slog.Logger, msg string) {
	if o.down.Swap(false) {
		log.Info(msg)
	}
}

// relayRounds bounds the batches one pass of the relay hands on before it
// looks at its stop signal and timer again.
const relayRounds = 50

// relay hands the events of the outbox to the workers: it claims them in
// batches of RelayBatch and enqueues one TypeWebhookFanOut task per batch.
// It never removes an event; the fan-out does, once the deliveries are
// stored and queued. If Redis is away the claimed batch is kept and
// offered again (events left unclaimed stay in the outbox); a batch held
// for longer than store.EventClaimTimeout is let go, because its events
// are then claimed again from the outbox, here or by another relay.
type relay struct {
	svc      *store.Service
	enqueue  enqueueFunc
	queue    string
	interval time.Duration
	log      *slog.Logger

	held   []store.Event
	heldAt time.Time
	redis  outage
	db     outage
}

// run relays until stop is closed: at once when the Service signals new
// events, else every interval (events written by other processes).
func (r *relay) run(stop <-chan struct{}) {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		r.pass(stop)
		select {
		case <-stop:
			return
		case <-r.svc.Changes():
		case <-t.C:
		}
	}
}

// pass hands on batches while they come full, up to relayRounds.
func (r *relay) pass(stop <-chan struct{}) {
	for range relayRounds {
		if r.held != nil && time.Since(r.heldAt) > store.EventClaimTimeout {
			r.held = nil
		}
		if r.held == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			evs, err := r.svc.ClaimEvents(ctx, RelayBatch)
			cancel()
			if err != nil {
				r.db.failed(r.log, "webhook relay cannot read the outbox; events wait there", err)
				return
			}
			r.db.ok(r.log, "webhook relay reads the outbox again")
			if len(evs) == 0 {
				return
			}
			r.held, r.heldAt = evs, time.Now()
		}
		if err := r.hand(r.held); err != nil {
			r.redis.failed(r.log, "webhook relay cannot enqueue events; they wait in the outbox until Redis answers", err)
			return
		}
		r.redis.ok(r.log, "webhook relay enqueues events again")
		full := len(r.held) == RelayBatch
		r.held = nil
		if !full {
			return
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// hand enqueues one fan-out task.
func (r *relay) hand(evs []store.Event) error {
	task, err := NewWebhookFanOutTask(evs)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = r.enqueue(ctx, task, asynq.Queue(r.queue))
	return err
}
