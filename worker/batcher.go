package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
)

// BatcherConfig configures a Batcher. Zero values take the defaults.
type BatcherConfig struct {
	// Queue receives the batch tasks (default QueueUsage).
	Queue string
	// BatchSize is N: a batch is enqueued as soon as N events are buffered
	// (default 500, at most MaxBatchEvents). One enqueue costs about 100 µs
	// and one Redis round trip, so 500 events per task make it ~0.2 µs per
	// event, and the worker stores them in one database transaction; the
	// payload stays around 200 KB.
	BatchSize int
	// FlushInterval is T: whatever is buffered is enqueued at least this
	// often (default 200 ms). It bounds how long an event waits in the
	// process when traffic is light (last_used_at shows up within about a
	// second, including the worker's poll), at no more than five tasks a
	// second per idle instance.
	FlushInterval time.Duration
	// BufferSize bounds the events held in the process, including those
	// being enqueued (default 100,000: some 35 MB at about 350 bytes an
	// event with its strings). It is what a Redis
	// outage can absorb without loss: 100 s at 1,000 requests/s, 10 s at
	// 10,000. Beyond it events are dropped and counted.
	BufferSize int
	// EnqueueTimeout bounds one enqueue attempt (default 2 s).
	EnqueueTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed enqueue
	// attempts, doubling from min to max, with jitter (defaults 100 ms, 5 s).
	MinBackoff, MaxBackoff time.Duration
	// LogInterval is the least time between two log lines about drops or
	// failed enqueues (default 30 s).
	LogInterval time.Duration
}

// Batcher defaults.
const (
	DefaultBatchSize      = 500
	DefaultFlushInterval  = 200 * time.Millisecond
	DefaultBufferSize     = 100_000
	DefaultEnqueueTimeout = 2 * time.Second
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 5 * time.Second
	DefaultLogInterval    = 30 * time.Second
)

func (c BatcherConfig) withDefaults() BatcherConfig {
	if c.Queue == "" {
		c.Queue = QueueUsage
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	c.BatchSize = min(c.BatchSize, MaxBatchEvents)
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.BufferSize <= 0 {
		c.BufferSize = DefaultBufferSize
	}
	if c.EnqueueTimeout <= 0 {
		c.EnqueueTimeout = DefaultEnqueueTimeout
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	if c.LogInterval <= 0 {
		c.LogInterval = DefaultLogInterval
	}
	return c
}

// BatcherStats counts events through a Batcher. At any time
// Recorded = Enqueued + Dropped + Buffered.
type BatcherStats struct {
	Recorded uint64 // events passed to Record
	Enqueued uint64 // events handed to asynq
	Dropped  uint64 // events lost: buffer full, after Close, or left at the Close deadline
	Buffered uint64 // events held in the process, waiting to be enqueued
	Batches  uint64 // batch tasks enqueued
	Failures uint64 // failed enqueue attempts (each is retried)
}

// Batcher collects usage events in a bounded in-process buffer and hands
// them to asynq in batch tasks: every BatchSize events or every
// FlushInterval, whichever comes first. It implements api.UsageRecorder.
//
// Record never blocks and never touches Redis. When Redis is unreachable the
// events stay buffered and the enqueue is retried with backoff until Redis
// answers again; nothing is lost unless the outage outlasts the buffer, and
// what is dropped is counted. With Redis persisting to an append-only file,
// an enqueued batch survives a Redis restart too.
type Batcher struct {
	cfg     BatcherConfig
	enqueue enqueueFunc
	log     *slog.Logger

	mu       sync.Mutex
	buf      []store.UsageEvent // filled by Record
	inFlight int                // events taken by the flusher and not yet enqueued
	closed   bool
	st       BatcherStats // Buffered is computed

	// Owned by the flusher goroutine.
	spare       []store.UsageEvent
	reported    uint64 // drops already logged
	lastDropLog time.Time
	failing     bool // the last enqueue attempt failed
	lastFailLog time.Time

	wake      chan struct{}
	stop      chan struct{}
	exited    chan struct{}
	closeCtx  context.Context // set before stop is closed
	runCtx    context.Context // cancelled when closeCtx is done
	cancelRun context.CancelFunc
	stopOnce  sync.Once
	lost      uint64 // events given up at the Close deadline; read after exited
}

// enqueueFunc is asynq.Client.EnqueueContext.
type enqueueFunc func(ctx context.Context, task *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error)

// NewBatcher returns a running Batcher that enqueues through rdb. Call Close
// to flush it before closing rdb.
func NewBatcher(rdb redis.UniversalClient, cfg BatcherConfig, logger *slog.Logger) *Batcher {
	return newBatcher(asynq.NewClientFromRedisClient(rdb).EnqueueContext, cfg, logger)
}

func newBatcher(enqueue enqueueFunc, cfg BatcherConfig, logger *slog.Logger) *Batcher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	runCtx, cancelRun := context.WithCancel(context.Background())
	b := &Batcher{
		runCtx:    runCtx,
		cancelRun: cancelRun,
		cfg:       cfg,
		enqueue:   enqueue,
		log:       logger.With("component", "usage-batcher"),
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
		exited:    make(chan struct{}),
	}
	go b.run()
	return b
}

// Record buffers one event. It never blocks: when the buffer is full or the
// Batcher is closed, the event is dropped and counted.
func (b *Batcher) Record(e store.UsageEvent) {
	if math.IsNaN(e.DurationMS) || math.IsInf(e.DurationMS, 0) {
		e.DurationMS = 0 // JSON cannot carry it, and it must not poison a batch
	}
	b.mu.Lock()
	b.st.Recorded++
	if b.closed || len(b.buf)+b.inFlight >= b.cfg.BufferSize {
		b.st.Dropped++
		b.mu.Unlock()
		return
	}
	b.buf = append(b.buf, e)
	full := len(b.buf)%b.cfg.BatchSize == 0
	b.mu.Unlock()
	if full {
		select {
		case b.wake <- struct{}{}:
		default:
		}
	}
}

// Dropped returns the number of events lost so far.
func (b *Batcher) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.st.Dropped
}

// Stats returns the counters.
func (b *Batcher) Stats() BatcherStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.st
	st.Buffered = uint64(len(b.buf) + b.inFlight)
	return st
}

// Close stops accepting events and enqueues everything buffered, retrying
// while Redis fails, until ctx is done. Events still buffered then are
// counted as dropped, and Close reports how many. Close returns soon after
// ctx is done even if Redis hangs (at most closeGrace later). Close the
// Batcher before the Redis connection it uses.
func (b *Batcher) Close(ctx context.Context) error {
	b.stopOnce.Do(func() {
		b.mu.Lock()
		b.closed = true
		b.mu.Unlock()
		b.closeCtx = ctx
		context.AfterFunc(ctx, b.cancelRun) // cuts an enqueue under way at the deadline
		close(b.stop)
	})
	select {
	case <-b.exited:
	case <-ctx.Done():
		t := time.NewTimer(closeGrace)
		defer t.Stop()
		select {
		case <-b.exited:
		case <-t.C:
			return fmt.Errorf("worker: usage batcher still enqueueing at the shutdown deadline, %d events buffered: %w",
				b.Stats().Buffered, ctx.Err())
		}
	}
	b.cancelRun()
	if b.lost > 0 {
		return fmt.Errorf("worker: %d usage events could not be enqueued before the shutdown deadline: %w",
			b.lost, context.Cause(b.closeCtx))
	}
	return nil
}

// closeGrace is how long Close waits past its deadline for the flusher to
// count what it gives up.
const closeGrace = 250 * time.Millisecond

// run is the flusher goroutine.
func (b *Batcher) run() {
	defer close(b.exited)
	tick := time.NewTicker(b.cfg.FlushInterval)
	defer tick.Stop()
	for {
		mode := fullBatches
		select {
		case <-tick.C:
			mode = everything
		case <-b.wake:
		case <-b.stop:
			b.shutdown()
			return
		}
		if !b.flush(b.runCtx, b.stop, mode) {
			b.shutdown()
			return
		}
		b.reportDrops(false)
	}
}

// shutdown flushes until the Close deadline and gives up on what is left.
func (b *Batcher) shutdown() {
	if b.closeCtx == nil { // only Close cancels runCtx, after setting closeCtx
		b.closeCtx = b.runCtx
	}
	if !b.flush(b.closeCtx, nil, drain) {
		b.mu.Lock()
		b.lost = uint64(len(b.buf) + b.inFlight)
		b.st.Dropped += b.lost
		b.buf, b.inFlight = nil, 0
		b.mu.Unlock()
		b.log.Error("usage events lost at shutdown: Redis did not take them before the deadline",
			"lost", b.lost, "err", context.Cause(b.closeCtx))
	}
	b.reportDrops(true)
}

// flushMode says what a flush sends.
type flushMode int

const (
	fullBatches flushMode = iota // only full batches: BatchSize events are waiting
	everything                   // whatever is buffered (FlushInterval is up), then full batches
	drain                        // everything, until the buffer is empty (Close)
)

// flush enqueues buffered events in batches, retrying failed attempts with
// backoff. It returns false, leaving the rest buffered, when stop is closed
// or ctx is done.
func (b *Batcher) flush(ctx context.Context, stop <-chan struct{}, mode flushMode) bool {
	for pass := 0; ; pass++ {
		b.mu.Lock()
		n := len(b.buf)
		if mode == fullBatches || (mode == everything && pass > 0) {
			// A partial batch waits for more events or for the next tick,
			// so that steady traffic makes full batches.
			n -= n % b.cfg.BatchSize
		}
		if n == 0 {
			b.mu.Unlock()
			return true
		}
		// Swap buffers: Record fills the spare array, starting with the
		// events left out, while these are sent.
		pending := b.buf[:n]
		b.buf = append(b.spare[:0], b.buf[n:]...)
		b.spare = nil
		b.inFlight = n
		b.mu.Unlock()
		for sent := 0; sent < len(pending); {
			chunk := pending[sent:min(sent+b.cfg.BatchSize, len(pending))]
			out := b.deliver(ctx, stop, chunk)
			b.mu.Lock()
			if out == stopped {
				// Put the unsent events back in front of those recorded since.
				rest := make([]store.UsageEvent, 0, len(pending)-sent+len(b.buf))
				rest = append(rest, pending[sent:]...)
				b.buf = append(rest, b.buf...)
				b.inFlight = 0
				b.mu.Unlock()
				return false
			}
			if out == enqueued {
				b.st.Enqueued += uint64(len(chunk))
				b.st.Batches++
			} else {
				b.st.Dropped += uint64(len(chunk))
			}
			b.inFlight -= len(chunk)
			b.mu.Unlock()
			sent += len(chunk)
		}
		// Reuse the array for the next round unless it is left over from a
		// burst (an outage) and mostly unused now.
		if cap(pending) > 4*max(len(pending), b.cfg.BatchSize) {
			pending = nil
		} else {
			clear(pending[:cap(pending)]) // drop references to the events' strings
		}
		b.spare = pending
		b.reportDrops(false)
	}
}

type outcome int

const (
	enqueued  outcome = iota
	discarded         // the batch cannot be encoded: retrying cannot help
	stopped           // stop closed or ctx done before an attempt succeeded
)

// deliver enqueues one batch, retrying with backoff until it succeeds, stop
// is closed or ctx is done.
func (b *Batcher) deliver(ctx context.Context, stop <-chan struct{}, events []store.UsageEvent) outcome {
	task, err := NewUsageBatchTask(events)
	if err != nil {
		b.log.Error("usage batch dropped: it cannot be encoded", "events", len(events), "err", err)
		return discarded
	}
	// One id for every attempt: if an attempt reached Redis but its answer
	// was lost, the retry is refused as a conflict instead of duplicated.
	id := uuid.NewString()
	backoff := b.cfg.MinBackoff
	for {
		actx, cancel := context.WithTimeout(ctx, b.cfg.EnqueueTimeout)
		_, err := b.enqueue(actx, task, asynq.Queue(b.cfg.Queue), asynq.TaskID(id))
		cancel()
		if err == nil || errors.Is(err, asynq.ErrTaskIDConflict) {
			b.enqueueOK()
			return enqueued
		}
		b.enqueueFailed(err)
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, b.cfg.MaxBackoff)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return stopped
		case <-ctx.Done():
			t.Stop()
			return stopped
		}
		b.reportDrops(false)
	}
}

func (b *Batcher) enqueueOK() {
	if b.failing {
		b.failing = false
		b.log.Info("usage events are being enqueued again", "buffered", b.Stats().Buffered)
	}
}

func (b *Batcher) enqueueFailed(err error) {
	b.mu.Lock()
	b.st.Failures++
	b.mu.Unlock()
	now := time.Now()
	if !b.failing || now.Sub(b.lastFailLog) >= b.cfg.LogInterval {
		b.log.Warn("cannot enqueue usage events; keeping them buffered and retrying",
			"buffered", b.Stats().Buffered, "buffer_size", b.cfg.BufferSize, "err", err)
		b.lastFailLog = now
	}
	b.failing = true
}

// reportDrops logs the drops since the last report, at most once per
// LogInterval unless forced.
func (b *Batcher) reportDrops(force bool) {
	dropped := b.Dropped()
	if dropped == b.reported {
		return
	}
	now := time.Now()
	if !force && now.Sub(b.lastDropLog) < b.cfg.LogInterval {
		return
	}
	b.log.Warn("usage events dropped: buffer full or batcher closed",
		"dropped", dropped-b.reported, "dropped_total", dropped, "buffer_size", b.cfg.BufferSize)
	b.reported, b.lastDropLog = dropped, now
}
