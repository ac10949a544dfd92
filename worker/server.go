package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// Concurrency is the number of tasks processed at once (default 4).
	// Each usage batch is one database statement, so a few workers keep up
	// with tens of thousands of events a second.
	Concurrency int
	// Queues names the queues; the Batcher must use the same usage queue.
	Queues Queues
	// Retention is how long usage logs are kept (default 90 days,
	// HUSTACK_USAGE_RETENTION). Negative: never delete them.
	Retention time.Duration
	// RetentionInterval is how often old logs are deleted, and tombstones
	// and idempotency keys purged (default 1 h). Every Server may schedule
	// the tasks; one of each runs per interval in all.
	RetentionInterval time.Duration
	// TombstoneRetention is how long deleted records stay visible as
	// tombstones (default 30 days, HUSTACK_TOMBSTONE_RETENTION). Negative:
	// never purge tombstones or expired idempotency keys.
	TombstoneRetention time.Duration
	// DisableUnusedInterval is how often keys unused for longer than their
	// workspace's policy allows are revoked (default 1 h). Only workspaces
	// whose policy sets disable_unused_after_days are affected. Negative:
	// never.
	DisableUnusedInterval time.Duration
	// ShutdownTimeout is how long Shutdown lets running tasks finish before
	// it puts them back in their queue (default 10 s).
	ShutdownTimeout time.Duration
	// PollInterval is how often idle workers look for new tasks (default
	// 1 s, asynq's own; lower means fresher usage data and more Redis load).
	PollInterval time.Duration

	// WebhookConcurrency is the number of webhook deliveries made at once
	// (default 20). They have workers of their own, so that receivers slow
	// to answer never hold back usage batches or maintenance.
	WebhookConcurrency int
	// WebhookPerSubscription is the number of deliveries to one
	// subscription made at once by this Server (default 4), so that a slow
	// receiver holds a few workers at most; its other deliveries are put
	// back for about a second, no attempt counted. Negative: no limit.
	WebhookPerSubscription int
	// WebhookFanOutConcurrency is the number of fan-outs run at once
	// (default 2), on workers of their own, so that new events never wait
	// for deliveries.
	WebhookFanOutConcurrency int
	// WebhookPollInterval is how often idle delivery workers look for new
	// tasks (default 250 ms). A change waits for it twice, at the fan-out
	// and at the delivery; retries are moved to the queue every five polls,
	// at most every second.
	WebhookPollInterval time.Duration
	// RelayInterval is how often the outbox is read for events written by
	// other processes (default 500 ms); writes through this Server's own
	// Service wake the relay at once.
	RelayInterval time.Duration
	// WebhookTimeout bounds one delivery attempt: connecting, sending and
	// reading the answer (default 10 s, at most MaxWebhookTimeout).
	WebhookTimeout time.Duration
	// WebhookRetrySchedule is the waits before the second, third... attempt
	// of a delivery, each with ±20% jitter (default
	// DefaultWebhookRetrySchedule(): about three days;
	// HUSTACK_WEBHOOK_RETRY_SCHEDULE, read with ParseRetrySchedule).
	WebhookRetrySchedule []time.Duration
	// WebhookDisableAfter is how long a subscription may keep failing,
	// without a success, before the worker disables it with a reason
	// (default 72 h).
	WebhookDisableAfter time.Duration
	// WebhookSweepInterval is how often pending deliveries more than
	// WebhookSweepGrace overdue are dispatched again, and subscriptions
	// failing for longer than WebhookDisableAfter disabled (default 1 min).
	// Negative: never.
	WebhookSweepInterval time.Duration
	// WebhookSweepGrace is how overdue a pending delivery must be for the
	// sweep to take its task for lost and dispatch it again (default
	// SweepGrace, 1 min).
	WebhookSweepGrace time.Duration
	// DeliveryRetention is how long finished deliveries are kept in the
	// delivery log (default 30 days); they are deleted every
	// RetentionInterval. Negative: never delete them.
	DeliveryRetention time.Duration
	// KeyExpiryInterval is how often keys about to expire are announced
	// with api_key.expiring events (default 1 h). Negative: never.
	KeyExpiryInterval time.Duration
}

// Queues names the queues of the worker.
type Queues struct {
	Usage       string // usage batches (default QueueUsage)
	Maintenance string // retention, purge, unused-key revocation and the webhook sweep (default QueueMaintenance)
	Webhooks    string // webhook deliveries (default QueueWebhooks)
	// WebhookFanOut holds webhook fan-outs (default Webhooks + "-fanout",
	// QueueWebhookFanOut with the default Webhooks).
	WebhookFanOut string
}

// Server defaults.
const (
	DefaultConcurrency       = 4
	DefaultRetention         = 90 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour
	DefaultShutdownTimeout   = 10 * time.Second
	// DefaultTombstoneRetention is issue-level behaviour that sync clients
	// rely on: deletions stay visible with include_deleted for 30 days.
	DefaultTombstoneRetention    = 30 * 24 * time.Hour
	DefaultDisableUnusedInterval = time.Hour
)

func (c Config) withDefaults() Config {
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Queues.Usage == "" {
		c.Queues.Usage = QueueUsage
	}
	if c.Queues.Maintenance == "" {
		c.Queues.Maintenance = QueueMaintenance
	}
	if c.Queues.Webhooks == "" {
		c.Queues.Webhooks = QueueWebhooks
	}
	if c.Queues.WebhookFanOut == "" {
		c.Queues.WebhookFanOut = c.Queues.Webhooks + "-fanout"
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionInterval <= 0 {
		c.RetentionInterval = DefaultRetentionInterval
	}
	if c.TombstoneRetention == 0 {
		c.TombstoneRetention = DefaultTombstoneRetention
	}
	if c.DisableUnusedInterval == 0 {
		c.DisableUnusedInterval = DefaultDisableUnusedInterval
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.WebhookConcurrency <= 0 {
		c.WebhookConcurrency = DefaultWebhookConcurrency
	}
	if c.WebhookPerSubscription == 0 {
		c.WebhookPerSubscription = DefaultWebhookPerSubscription
	}
	if c.WebhookFanOutConcurrency <= 0 {
		c.WebhookFanOutConcurrency = DefaultWebhookFanOutConcurrency
	}
	if c.WebhookPollInterval <= 0 {
		c.WebhookPollInterval = DefaultWebhookPollInterval
	}
	if c.RelayInterval <= 0 {
		c.RelayInterval = DefaultRelayInterval
	}
	if c.WebhookTimeout <= 0 {
		c.WebhookTimeout = DefaultWebhookTimeout
	}
	c.WebhookTimeout = min(c.WebhookTimeout, MaxWebhookTimeout)
	if len(c.WebhookRetrySchedule) == 0 {
		c.WebhookRetrySchedule = DefaultWebhookRetrySchedule()
	}
	if c.WebhookDisableAfter <= 0 {
		c.WebhookDisableAfter = DefaultWebhookDisableAfter
	}
	if c.WebhookSweepInterval == 0 {
		c.WebhookSweepInterval = DefaultWebhookSweepInterval
	}
	if c.WebhookSweepGrace <= 0 {
		c.WebhookSweepGrace = SweepGrace
	}
	if c.DeliveryRetention == 0 {
		c.DeliveryRetention = DefaultDeliveryRetention
	}
	if c.KeyExpiryInterval == 0 {
		c.KeyExpiryInterval = DefaultKeyExpiryInterval
	}
	return c
}

// Server processes the worker's tasks: usage batches, webhook fan-outs and
// deliveries, and the maintenance tasks that it also schedules. It relays
// the events of the outbox to the webhook workers. It runs alone (hustack
// worker) or inside the API process: Start returns at once and Shutdown
// stops it, without signal handling of its own.
type Server struct {
	cfg    Config
	srv    *asynq.Server // usage and maintenance
	whSrv  *asynq.Server // webhook deliveries, with workers of their own
	foSrv  *asynq.Server // webhook fan-outs, with workers of their own
	relay  *relay
	mux    *asynq.ServeMux
	client *asynq.Client
	rdb    redis.UniversalClient
	log    *slog.Logger

	stop     chan struct{}
	wg       sync.WaitGroup
	started  atomic.Bool
	periodic []*periodicTask // owned by the scheduler
}

// Task id prefixes of the periodic maintenance tasks; the interval's start
// follows.
const (
	usageRetentionID    = "usage-retention-"
	purgeExpiredID      = "purge-expired-"
	disableUnusedKeysID = "keys-disable-unused-"
	webhookSweepID      = "webhook-sweep-"
	webhookRetentionID  = "webhook-retention-"
	announceExpiringID  = "keys-announce-expiring-"
)

// periodicTask is a maintenance task that runs once per interval across
// all Servers sharing the Redis.
type periodicTask struct {
	id       string // task id prefix, followed by the interval's start
	interval time.Duration
	task     func() (*asynq.Task, error)
	lastSlot time.Time
}

// NewServer returns a Server that takes tasks from rdb and stores them with
// svc. It does not close rdb.
func NewServer(rdb redis.UniversalClient, svc *store.Service, cfg Config, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	log := logger.With("component", "worker")
	s := &Server{
		cfg:    cfg,
		mux:    asynq.NewServeMux(),
		client: asynq.NewClientFromRedisClient(rdb),
		rdb:    rdb,
		log:    log,
		stop:   make(chan struct{}),
	}
	NewHandlers(svc, log).Register(s.mux)
	NewWebhookHandlers(rdb, svc, cfg, log).Register(s.mux)
	s.relay = &relay{svc: svc, unique: newUniqueEnqueuer(rdb), queue: cfg.Queues.WebhookFanOut,
		interval: cfg.RelayInterval, log: log}
	if cfg.Retention > 0 {
		s.periodic = append(s.periodic, &periodicTask{id: usageRetentionID, interval: cfg.RetentionInterval,
			task: func() (*asynq.Task, error) { return NewUsageRetentionTask(cfg.Retention) }})
	}
	if cfg.TombstoneRetention > 0 {
		s.periodic = append(s.periodic, &periodicTask{id: purgeExpiredID, interval: cfg.RetentionInterval,
			task: func() (*asynq.Task, error) { return NewPurgeExpiredTask(cfg.TombstoneRetention) }})
	}
	if cfg.DisableUnusedInterval > 0 {
		s.periodic = append(s.periodic, &periodicTask{id: disableUnusedKeysID, interval: cfg.DisableUnusedInterval,
			task: func() (*asynq.Task, error) { return NewDisableUnusedKeysTask(), nil }})
	}
	if cfg.WebhookSweepInterval > 0 {
		s.periodic = append(s.periodic, &periodicTask{id: webhookSweepID, interval: cfg.WebhookSweepInterval,
			task: func() (*asynq.Task, error) { return NewWebhookSweepTask(), nil }})
	}
	if cfg.DeliveryRetention > 0 {
		s.periodic = append(s.periodic, &periodicTask{id: webhookRetentionID, interval: cfg.RetentionInterval,
			task: func() (*asynq.Task, error) { return NewWebhookRetentionTask(cfg.DeliveryRetention) }})
	}
	if cfg.KeyExpiryInterval > 0 {
		s.periodic = append(s.periodic, &periodicTask{id: announceExpiringID, interval: cfg.KeyExpiryInterval,
			task: func() (*asynq.Task, error) { return NewAnnounceExpiringKeysTask(), nil }})
	}
	redisDown := &atomic.Bool{}
	healthCheck := func(err error) {
		switch {
		case err != nil && !redisDown.Swap(true):
			log.Warn("worker cannot reach redis; asynq keeps retrying", "err", err)
		case err == nil && redisDown.Swap(false):
			log.Info("worker reaches redis again")
		}
	}
	asynqLog := newAsynqLogger(log, 30*time.Second)
	s.srv = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: cfg.Concurrency,
		Queues: map[string]int{
			cfg.Queues.Usage:       6,
			cfg.Queues.Maintenance: 1,
		},
		ErrorHandler:      asynq.ErrorHandlerFunc(s.handleError),
		Logger:            asynqLog,
		LogLevel:          asynq.WarnLevel,
		ShutdownTimeout:   cfg.ShutdownTimeout,
		TaskCheckInterval: cfg.PollInterval,
		HealthCheckFunc:   healthCheck,
	})
	webhookServer := func(concurrency int, queue string) *asynq.Server {
		return asynq.NewServerFromRedisClient(rdb, asynq.Config{
			Concurrency:     concurrency,
			Queues:          map[string]int{queue: 1},
			ErrorHandler:    asynq.ErrorHandlerFunc(s.handleError),
			Logger:          asynqLog,
			LogLevel:        asynq.WarnLevel,
			ShutdownTimeout: cfg.ShutdownTimeout,
			// Each idle look for a task is one Redis call; retries, scheduled
			// to the second, are moved to the queue every few looks.
			TaskCheckInterval:        cfg.WebhookPollInterval,
			DelayedTaskCheckInterval: min(5*cfg.WebhookPollInterval, time.Second),
			RetryDelayFunc:           webhookRetryDelay,
			IsFailure:                webhookFailure,
			HealthCheckFunc:          healthCheck,
		})
	}
	s.whSrv = webhookServer(cfg.WebhookConcurrency, cfg.Queues.Webhooks)
	s.foSrv = webhookServer(cfg.WebhookFanOutConcurrency, cfg.Queues.WebhookFanOut)
	return s
}

// webhookRetryDelay is the wait before asynq runs a failed webhook task
// again: 1 s, doubling up to a minute, plus up to half as much jitter.
// Webhook tasks fail only when the store or Redis does (a failed HTTP
// attempt is recorded, not returned), so they are retried soon after it
// comes back rather than after asynq's backoff of minutes to hours. A
// delivery whose subscription has all its deliveries in flight waits
// busyRetryDelay.
func webhookRetryDelay(n int, err error, _ *asynq.Task) time.Duration {
	if errors.Is(err, errSubscriptionBusy) {
		return busyRetryDelay
	}
	d := min(time.Second<<min(max(n, 0), 6), time.Minute)
	return d + rand.N(d/2+1)
}

// webhookFailure tells asynq which errors of webhook tasks count as a
// failure, and so as a retry: all but errSubscriptionBusy, a delivery put
// back to wait its turn. (A task whose retries are already used up by
// store errors is archived all the same; the sweep replaces it.)
func webhookFailure(err error) bool { return err != nil && !errors.Is(err, errSubscriptionBusy) }

// handleError is the one place where task failures are logged: once per
// failed attempt, with what asynq will do next.
func (s *Server) handleError(ctx context.Context, t *asynq.Task, err error) {
	id, _ := asynq.GetTaskID(ctx)
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	attrs := []any{"task", t.Type(), "id", id, "queue", queue, "retried", retried, "max_retry", maxRetry, "err", err}
	switch {
	case errors.Is(err, errSubscriptionBusy) && retried < maxRetry:
		// Waiting its turn, no failure.
	case errors.Is(err, asynq.SkipRetry):
		s.log.Error("task failed and is archived without retry", attrs...)
	case retried >= maxRetry:
		s.log.Error("task failed for the last time and is archived", attrs...)
	default:
		s.log.Warn("task failed and will be retried", attrs...)
	}
}

// Start starts processing, relaying webhook events, and scheduling the
// maintenance tasks that are not disabled: usage retention, the purge of
// tombstones and idempotency keys, the revocation of unused keys, the
// sweep of overdue deliveries, the delivery log's retention and the
// announcement of expiring keys.
func (s *Server) Start() error {
	if err := s.srv.Start(s.mux); err != nil {
		return fmt.Errorf("worker: start: %w", err)
	}
	if err := s.whSrv.Start(s.mux); err != nil {
		s.srv.Shutdown()
		return fmt.Errorf("worker: start webhook workers: %w", err)
	}
	if err := s.foSrv.Start(s.mux); err != nil {
		s.srv.Shutdown()
		s.whSrv.Shutdown()
		return fmt.Errorf("worker: start webhook fan-out workers: %w", err)
	}
	s.started.Store(true)
	s.wg.Go(func() { s.relay.run(s.stop) })
	if len(s.periodic) > 0 {
		s.wg.Go(s.schedule)
	}
	s.log.Info("worker started", "concurrency", s.cfg.Concurrency, "webhook_concurrency", s.cfg.WebhookConcurrency,
		"webhook_per_subscription", s.cfg.WebhookPerSubscription, "webhook_fanout_concurrency", s.cfg.WebhookFanOutConcurrency,
		"queues", []string{s.cfg.Queues.Usage, s.cfg.Queues.Maintenance, s.cfg.Queues.Webhooks, s.cfg.Queues.WebhookFanOut},
		"retention", s.cfg.Retention, "retention_interval", s.cfg.RetentionInterval,
		"tombstone_retention", s.cfg.TombstoneRetention, "disable_unused_interval", s.cfg.DisableUnusedInterval,
		"webhook_timeout", s.cfg.WebhookTimeout, "webhook_retry_schedule", s.cfg.WebhookRetrySchedule,
		"webhook_disable_after", s.cfg.WebhookDisableAfter, "delivery_retention", s.cfg.DeliveryRetention)
	return nil
}

// Shutdown stops relaying and taking tasks, lets running ones (deliveries
// included) finish for up to ShutdownTimeout and puts the others back in
// their queue.
func (s *Server) Shutdown() {
	if !s.started.Swap(false) {
		return
	}
	close(s.stop)
	s.wg.Wait()
	var wg sync.WaitGroup
	wg.Go(s.srv.Shutdown)
	wg.Go(s.whSrv.Shutdown)
	wg.Go(s.foSrv.Shutdown)
	wg.Wait()
	s.log.Info("worker stopped")
}

// Drain waits until the usage queue holds no task (pending, running,
// scheduled or waiting for a retry), or ctx is done. Call it on a started
// Server before Shutdown when queued tasks would otherwise be lost, as with
// the embedded Redis, and close the Batcher first.
func (s *Server) Drain(ctx context.Context) error {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		n, err := s.queuedUsageTasks(ctx)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("worker: drain: %w (last error: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("worker: drain: %w with %d usage tasks left", ctx.Err(), n)
		case <-t.C:
		}
	}
}

// queuedUsageTasks counts the usage queue's unfinished tasks. It reads
// asynq's Redis layout (asynq:{queue}:pending and so on) directly, because
// the Inspector refuses queues missing from asynq's queue registry, which is
// not rebuilt after Redis loses its data.
func (s *Server) queuedUsageTasks(ctx context.Context) (int64, error) {
	prefix := "asynq:{" + s.cfg.Queues.Usage + "}:"
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	pipe := s.rdb.Pipeline()
	counts := []*redis.IntCmd{
		pipe.LLen(ctx, prefix+"pending"),
		pipe.LLen(ctx, prefix+"active"),
		pipe.ZCard(ctx, prefix+"scheduled"),
		pipe.ZCard(ctx, prefix+"retry"),
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return 0, err
	}
	var n int64
	for _, c := range counts {
		n += c.Val()
	}
	return n, nil
}

// schedule enqueues each maintenance task once per its interval across all
// Servers sharing the Redis: the task id names the interval (the time slot),
// and a completed task is kept for an interval, so a second enqueue for the
// same slot is refused as a conflict. Checking four times per interval makes
// up for clock drift and for Redis being away at a check.
func (s *Server) schedule() {
	shortest := s.periodic[0].interval
	for _, p := range s.periodic {
		shortest = min(shortest, p.interval)
	}
	every := min(max(shortest/4, time.Second), 5*time.Minute)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		now := time.Now()
		for _, p := range s.periodic {
			if _, err := s.enqueuePeriodic(context.Background(), p, now); err != nil {
				s.log.Warn("cannot schedule a maintenance task; will try again", "task", strings.TrimSuffix(p.id, "-"), "err", err)
			}
		}
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
	}
}

// enqueuePeriodic enqueues p's task for the slot holding now, unless this or
// another Server already did. It reports whether it enqueued.
func (s *Server) enqueuePeriodic(ctx context.Context, p *periodicTask, now time.Time) (bool, error) {
	slot := now.UTC().Truncate(p.interval)
	if slot.Equal(p.lastSlot) {
		return false, nil
	}
	task, err := p.task()
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = s.client.EnqueueContext(ctx, task,
		asynq.Queue(s.cfg.Queues.Maintenance),
		asynq.TaskID(p.id+slot.Format(time.RFC3339)),
		asynq.Retention(p.interval))
	switch {
	case errors.Is(err, asynq.ErrTaskIDConflict):
		p.lastSlot = slot
		return false, nil
	case err != nil:
		return false, err
	}
	p.lastSlot = slot
	return true, nil
}

// asynqLogger writes asynq's own log lines to slog. While Redis is away
// asynq repeats the same complaints every second, so warnings and errors
// are let through at most once per interval, with a count of those held back.
type asynqLogger struct {
	log      *slog.Logger
	interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func newAsynqLogger(l *slog.Logger, interval time.Duration) *asynqLogger {
	return &asynqLogger{log: l.With("source", "asynq"), interval: interval}
}

func (l *asynqLogger) Debug(args ...any) { l.log.Debug(joinArgs(args)) }
func (l *asynqLogger) Info(args ...any)  { l.log.Info(joinArgs(args)) }
func (l *asynqLogger) Warn(args ...any)  { l.throttled(slog.LevelWarn, args) }
func (l *asynqLogger) Error(args ...any) { l.throttled(slog.LevelError, args) }
func (l *asynqLogger) Fatal(args ...any) { l.log.Error(joinArgs(args)) }

func (l *asynqLogger) throttled(level slog.Level, args []any) {
	l.mu.Lock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.interval {
		l.suppressed++
		l.mu.Unlock()
		return
	}
	n := l.suppressed
	l.last, l.suppressed = now, 0
	l.mu.Unlock()
	if n > 0 {
		l.log.Log(context.Background(), level, joinArgs(args), "suppressed_since_last", n)
		return
	}
	l.log.Log(context.Background(), level, joinArgs(args))
}

func joinArgs(args []any) string {
	if len(args) == 1 {
		if s, ok := args[0].(string); ok {
			return s
		}
	}
	return strings.TrimSpace(fmt.Sprint(args...))
}
