package worker

import (
	"context"
	"encoding/json"
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
// batches of RelayBatch and enqueues one TypeWebhookFanOut task per batch,
// with the task id FanOutTaskID, so that events claimed again while their
// fan-out is still queued or running are not queued twice. It never
// removes an event it hands on; the fan-out does, once the deliveries are
// stored and queued. If Redis is away the claimed batch is kept and
// offered again (events left unclaimed stay in the outbox); a batch held
// for longer than the Service's EventClaimTimeout is let go, because its
// events are then claimed again from the outbox, here or by another relay.
type relay struct {
	svc      *store.Service
	unique   *uniqueEnqueuer
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
		if r.held != nil && time.Since(r.heldAt) > r.svc.EventClaimTimeout() {
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
		full := len(r.held) == RelayBatch
		var err error
		if r.held, err = r.hand(r.held); err != nil {
			r.redis.failed(r.log, "webhook relay cannot enqueue events; they wait in the outbox until Redis answers", err)
			return
		}
		r.redis.ok(r.log, "webhook relay enqueues events again")
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

// hand enqueues one fan-out task of evs, unless one is queued or running.
// Events whose data is not valid JSON cannot be put in a task: they are
// logged and removed from the outbox, and the others handed on. It returns
// the events it handed on, or tried to.
func (r *relay) hand(evs []store.Event) ([]store.Event, error) {
	task, err := NewWebhookFanOutTask(evs)
	if err != nil {
		if evs = r.dropInvalid(evs); len(evs) == 0 {
			return nil, nil
		}
		if task, err = NewWebhookFanOutTask(evs); err != nil {
			return evs, err
		}
	}
	_, err = r.unique.enqueue(context.Background(), task, r.queue, FanOutTaskID(evs), asynq.Queue(r.queue))
	return evs, err
}

// dropInvalid returns the events whose data is valid JSON, and removes the
// others from the outbox: no fan-out could ever carry them.
func (r *relay) dropInvalid(evs []store.Event) []store.Event {
	var valid []store.Event
	var invalid []string
	for _, ev := range evs {
		if json.Valid(ev.Data) {
			valid = append(valid, ev)
			continue
		}
		r.log.Error("webhook event dropped: its data is not valid JSON, so it can never be delivered",
			"event_id", ev.ID, "event_type", ev.Type, "workspace_id", ev.WorkspaceID)
		invalid = append(invalid, ev.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.svc.AckEvents(ctx, invalid); err != nil {
		r.log.Warn("webhook relay cannot remove invalid events from the outbox; they are claimed again later",
			"events", len(invalid), "err", err)
	}
	return valid
}
