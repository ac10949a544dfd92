package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/sqlite"
	"github.com/hustack/hustack/worker/redistest"
)

// env is one test's world: a SQLite store with a workspace and keys, the
// real Redis, and queue names no other test uses.
type env struct {
	opts   *redis.Options
	rdb    *redis.Client
	db     *sqlite.DB
	svc    *store.Service
	queues Queues
	ws     *store.Workspace
	keys   []*store.APIKey
	raw    []string // the keys' raw values
}

func newEnv(t *testing.T) *env {
	t.Helper()
	opts := redistest.Options(t)
	e := &env{opts: opts, rdb: redistest.Client(t)}
	name := redistest.Name(t)
	e.queues = Queues{Usage: name + "-usage", Maintenance: name + "-maintenance", Webhooks: name + "-webhooks",
		WebhookFanOut: name + "-webhooks-fanout"}
	t.Cleanup(func() {
		redistest.DeleteQueues(t, opts, e.queues.Usage, e.queues.Maintenance, e.queues.Webhooks, e.queues.WebhookFanOut)
	})
	e.openStore(t)
	return e
}

func (e *env) openStore(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hustack.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db, e.svc = db, store.NewService(db)
	if e.ws, err = e.svc.CreateWorkspace(ctx, "Acme"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		k, raw, err := e.svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: e.ws.ID, Name: fmt.Sprint("key ", i),
			Scopes: []store.Scope{store.ScopeUsage}, RateLimit: &store.RateLimit{Count: 1_000_000, Period: time.Minute}})
		if err != nil {
			t.Fatal(err)
		}
		e.keys, e.raw = append(e.keys, k), append(e.raw, raw)
	}
}

// server starts a worker on the env's queues, shut down at the end of the test.
func (e *env) server(t *testing.T, cfg Config, logger *slog.Logger) *Server {
	t.Helper()
	cfg.Queues = e.queues
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 50 * time.Millisecond
	}
	if cfg.Retention == 0 {
		cfg.Retention = -1 // tests of retention turn it on
	}
	if cfg.TombstoneRetention == 0 {
		cfg.TombstoneRetention = -1 // tests of the purge turn it on
	}
	if cfg.DisableUnusedInterval == 0 {
		cfg.DisableUnusedInterval = -1 // tests of unused keys turn it on
	}
	for _, d := range []*time.Duration{&cfg.WebhookSweepInterval, &cfg.DeliveryRetention, &cfg.KeyExpiryInterval} {
		if *d == 0 {
			*d = -1 // tests of webhooks turn them on
		}
	}
	s := NewServer(e.rdb, e.svc, cfg, logger)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func (e *env) batcherConfig() BatcherConfig {
	return BatcherConfig{Queue: e.queues.Usage, BatchSize: 50, FlushInterval: 20 * time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
}

// event returns a usage event of key k at time at.
func (e *env) event(k *store.APIKey, at time.Time) store.UsageEvent {
	return store.UsageEvent{
		ID: store.NewID(), WorkspaceID: e.ws.ID, KeyID: k.ID, Method: "GET", Route: "/api/v1/accounts/:id",
		Status: 200, DurationMS: 1.5, Time: at.UTC().Truncate(time.Millisecond), RequestID: store.NewID(),
		Transport: store.TransportREST, UserAgent: "worker-test",
	}
}

// storedIDs returns the ids of the workspace's stored usage events.
func (e *env) storedIDs(t *testing.T) []string {
	t.Helper()
	rows, err := e.db.FindUsageEvents(context.Background(), e.ws.ID, store.UsageQuery{Limit: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	slices.Sort(ids)
	return ids
}

func (e *env) lastUsed(t *testing.T, keyID string) time.Time {
	t.Helper()
	keys, err := e.svc.FindAPIKeys(context.Background(), e.ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k.ID == keyID {
			if k.LastUsedAt == nil {
				return time.Time{}
			}
			return k.LastUsedAt.UTC()
		}
	}
	t.Fatalf("key %s not found", keyID)
	return time.Time{}
}

// recorder remembers what was recorded, for comparison with what is stored.
type recorder struct {
	b  *Batcher
	mu sync.Mutex
	// ids of the events passed to Record
	ids []string
}

func (r *recorder) record(e store.UsageEvent) {
	r.mu.Lock()
	r.ids = append(r.ids, e.ID)
	r.mu.Unlock()
	r.b.Record(e)
}

func (r *recorder) sorted() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Sorted(slices.Values(r.ids))
}

// traffic records n events from several goroutines, spread over the keys.
func (e *env) traffic(r *recorder, n int) {
	var wg sync.WaitGroup
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				r.record(e.event(e.keys[i%len(e.keys)], time.Now()))
			}
		})
	}
	wg.Wait()
}

// closeAndDrain flushes the batcher and waits for the worker to store
// everything it was given.
func closeAndDrain(t *testing.T, b *Batcher, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Batcher.Close: %v (stats %+v)", err, b.Stats())
	}
	if err := s.Drain(ctx); err != nil {
		t.Fatalf("Server.Drain: %v", err)
	}
}

// waitFor polls cond every 5 ms for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func checkStats(t *testing.T, got BatcherStats, recorded, enqueued, dropped uint64) {
	t.Helper()
	if got.Recorded != recorded || got.Enqueued != enqueued || got.Dropped != dropped || got.Buffered != 0 {
		t.Fatalf("stats %+v, want recorded %d, enqueued %d, dropped %d, buffered 0", got, recorded, enqueued, dropped)
	}
}

func TestPipeline(t *testing.T) {
	e := newEnv(t)
	srv := e.server(t, Config{Concurrency: 4}, nil)
	b := NewBatcher(e.rdb, e.batcherConfig(), nil)
	r := &recorder{b: b}

	const n = 1234
	e.traffic(r, n)
	closeAndDrain(t, b, srv)

	want, got := r.sorted(), e.storedIDs(t)
	if !slices.Equal(got, want) {
		t.Fatalf("stored %d events, recorded %d; the sets differ", len(got), len(want))
	}
	st := b.Stats()
	checkStats(t, st, n, n, 0)
	if st.Batches < n/50 {
		t.Fatalf("%d batches for %d events of at most 50 each", st.Batches, n)
	}

	// Each key's last-used time is its newest event's.
	rows, err := e.db.FindUsageEvents(context.Background(), e.ws.ID, store.UsageQuery{Limit: n})
	if err != nil {
		t.Fatal(err)
	}
	newest := map[string]time.Time{}
	for _, row := range rows {
		if row.Time.After(newest[row.KeyID]) {
			newest[row.KeyID] = row.Time
		}
	}
	for _, k := range e.keys {
		if got := e.lastUsed(t, k.ID); !got.Equal(newest[k.ID]) {
			t.Errorf("key %s: last_used_at %v, newest event %v", k.Name, got, newest[k.ID])
		}
	}
}

func TestHandleUsageBatchTask(t *testing.T) {
	e := newEnv(t)
	h := NewHandlers(e.svc, nil)
	ctx := context.Background()
	k := e.keys[0]
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	run := func(events ...store.UsageEvent) {
		t.Helper()
		task, err := NewUsageBatchTask(events)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.HandleUsageBatchTask(ctx, task); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("last_used_at only moves forward", func(t *testing.T) {
		run(e.event(k, t0.Add(time.Minute)), e.event(k, t0))
		if got := e.lastUsed(t, k.ID); !got.Equal(t0.Add(time.Minute)) {
			t.Fatalf("last_used_at %v, want the newest event's %v", got, t0.Add(time.Minute))
		}
		run(e.event(k, t0.Add(-time.Hour))) // an older batch arriving late
		if got := e.lastUsed(t, k.ID); !got.Equal(t0.Add(time.Minute)) {
			t.Fatalf("an older batch moved last_used_at to %v", got)
		}
		run(e.event(k, t0.Add(2*time.Minute)))
		if got := e.lastUsed(t, k.ID); !got.Equal(t0.Add(2 * time.Minute)) {
			t.Fatalf("last_used_at %v, want %v", got, t0.Add(2*time.Minute))
		}
	})

	t.Run("the same batch twice adds no rows", func(t *testing.T) {
		before := len(e.storedIDs(t))
		events := []store.UsageEvent{e.event(k, t0), e.event(e.keys[1], t0), e.event(e.keys[2], t0)}
		task, err := NewUsageBatchTask(events)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if err := h.HandleUsageBatchTask(ctx, task); err != nil {
				t.Fatal(err)
			}
		}
		if got := len(e.storedIDs(t)); got != before+len(events) {
			t.Fatalf("%d rows after processing a batch of %d twice, want %d", got, len(events), before+len(events))
		}
	})

	t.Run("invalid payloads are not retried", func(t *testing.T) {
		noID := e.event(k, t0)
		noID.ID = ""
		noTime := e.event(k, t0)
		noTime.Time = time.Time{}
		valid, err := NewUsageBatchTask([]store.UsageEvent{noID})
		if err != nil {
			t.Fatal(err)
		}
		for name, payload := range map[string][]byte{
			"not json":   []byte("{"),
			"no events":  []byte(`{"events":[]}`),
			"wrong type": []byte(`{"events":"x"}`),
			"no id":      valid.Payload(),
			"no time":    mustJSON(t, UsageBatchPayload{Events: []store.UsageEvent{noTime}}),
		} {
			err := h.HandleUsageBatchTask(ctx, asynq.NewTask(TypeUsageBatch, payload))
			if !errors.Is(err, asynq.SkipRetry) {
				t.Errorf("%s: error %v, want one wrapping asynq.SkipRetry", name, err)
			}
		}
	})

	t.Run("store errors are retried", func(t *testing.T) {
		e2 := &env{}
		e2.openStore(t)
		e2.db.Close()
		task, err := NewUsageBatchTask([]store.UsageEvent{e2.event(e2.keys[0], t0)})
		if err != nil {
			t.Fatal(err)
		}
		err = NewHandlers(e2.svc, nil).HandleUsageBatchTask(ctx, task)
		if err == nil || errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("error %v, want a retryable error", err)
		}
	})
}

func TestDuplicateTasksThroughQueue(t *testing.T) {
	e := newEnv(t)
	srv := e.server(t, Config{}, nil)
	events := []store.UsageEvent{e.event(e.keys[0], time.Now()), e.event(e.keys[1], time.Now())}
	task, err := NewUsageBatchTask(events)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClientFromRedisClient(e.rdb)
	for range 3 { // the same payload as three tasks, as after a lost enqueue reply
		if _, err := client.Enqueue(task, asynq.Queue(e.queues.Usage)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(e.storedIDs(t)); got != len(events) {
		t.Fatalf("%d rows after the same batch ran three times, want %d", got, len(events))
	}
}

func mustJSON(t *testing.T, p UsageBatchPayload) []byte {
	t.Helper()
	task, err := NewUsageBatchTask(p.Events)
	if err != nil {
		t.Fatal(err)
	}
	return task.Payload()
}

func TestShutdownFlushesBuffer(t *testing.T) {
	e := newEnv(t)
	srv := e.server(t, Config{}, nil)
	cfg := e.batcherConfig()
	cfg.BatchSize, cfg.FlushInterval = 1000, time.Hour // nothing leaves before Close
	b := NewBatcher(e.rdb, cfg, nil)
	r := &recorder{b: b}
	e.traffic(r, 137)
	if st := b.Stats(); st.Enqueued != 0 || st.Buffered != 137 {
		t.Fatalf("before Close: %+v, want everything buffered", st)
	}
	closeAndDrain(t, b, srv)
	if got, want := e.storedIDs(t), r.sorted(); !slices.Equal(got, want) {
		t.Fatalf("stored %d events after shutdown, recorded %d", len(got), len(want))
	}
	checkStats(t, b.Stats(), 137, 137, 0)

	b.Record(e.event(e.keys[0], time.Now()))
	if st := b.Stats(); st.Dropped != 1 || st.Recorded != 138 {
		t.Fatalf("after Close, Record: %+v, want the event dropped and counted", st)
	}
}

// TestRedisOutage cuts the batcher's connection to the real Redis in the
// middle of traffic, through a proxy, and restores it.
func TestRedisOutage(t *testing.T) {
	e := newEnv(t)
	srv := e.server(t, Config{}, nil)
	proxy := redistest.NewProxy(t, e.opts.Addr)
	viaProxy := *e.opts
	viaProxy.Addr = proxy.Addr()
	viaProxy.ContextTimeoutEnabled = true
	brdb := redis.NewClient(&viaProxy)
	t.Cleanup(func() { brdb.Close() })

	logs := &capture{}
	b := NewBatcher(brdb, e.batcherConfig(), slog.New(logs))
	r := &recorder{b: b}

	e.traffic(r, 300)
	waitFor(t, "the first events to be enqueued", func() bool { return b.Stats().Enqueued > 0 })

	proxy.Stop()
	e.traffic(r, 500)
	waitFor(t, "an enqueue to fail", func() bool { return b.Stats().Failures > 0 })
	e.traffic(r, 100) // while the flusher is retrying
	if st := b.Stats(); st.Buffered == 0 || st.Dropped != 0 {
		t.Fatalf("during the outage: %+v, want events buffered and none dropped", st)
	}

	proxy.Start(t)
	e.traffic(r, 200)
	closeAndDrain(t, b, srv)

	if got, want := e.storedIDs(t), r.sorted(); !slices.Equal(got, want) {
		qi, qerr := asynq.NewInspectorFromRedisClient(e.rdb).GetQueueInfo(e.queues.Usage)
		t.Fatalf("stored %d events, recorded %d: events lost or invented in the outage; stats %+v; queue %+v %v", len(got), len(want), b.Stats(), qi, qerr)
	}
	checkStats(t, b.Stats(), 1100, 1100, 0)
	if n := logs.count(slog.LevelWarn, "cannot enqueue usage events"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
	if n := logs.count(slog.LevelInfo, "usage events are being enqueued again"); n != 1 {
		t.Errorf("the recovery was logged %d times, want once", n)
	}
}

// TestEmbeddedRedisRestart runs the whole path on the embedded Redis and
// stops and restarts that server (same port, data kept) mid-traffic.
func TestEmbeddedRedisRestart(t *testing.T) {
	e := &env{}
	e.openStore(t)
	logs := &capture{}
	rds, err := OpenRedis(context.Background(), "", slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rds.Close() })
	if !rds.Embedded() || logs.count(slog.LevelWarn, "REDIS_URL is not set") != 1 {
		t.Fatalf("embedded mode not reported: embedded=%v, logs %v", rds.Embedded(), logs.messages())
	}
	e.rdb, e.queues = rds.Client, Queues{Usage: QueueUsage, Maintenance: QueueMaintenance}
	srv := e.server(t, Config{}, nil)
	b := NewBatcher(rds.Client, e.batcherConfig(), nil)
	r := &recorder{b: b}

	e.traffic(r, 200)
	rds.mini.Close()
	e.traffic(r, 200)
	waitFor(t, "an enqueue to fail", func() bool { return b.Stats().Failures > 0 })
	if err := rds.mini.Restart(); err != nil {
		t.Fatal(err)
	}
	e.traffic(r, 100)
	closeAndDrain(t, b, srv)

	if got, want := e.storedIDs(t), r.sorted(); !slices.Equal(got, want) {
		t.Fatalf("stored %d events, recorded %d", len(got), len(want))
	}
	checkStats(t, b.Stats(), 500, 500, 0)
}

func TestBufferFull(t *testing.T) {
	e := newEnv(t)
	proxy := redistest.NewProxy(t, e.opts.Addr)
	viaProxy := *e.opts
	viaProxy.Addr = proxy.Addr()
	brdb := redis.NewClient(&viaProxy)
	t.Cleanup(func() { brdb.Close() })
	proxy.Stop()

	logs := &capture{}
	cfg := e.batcherConfig()
	cfg.BufferSize, cfg.BatchSize, cfg.LogInterval = 10, 4, time.Hour
	b := NewBatcher(brdb, cfg, slog.New(logs))
	r := &recorder{b: b}
	for range 25 {
		r.record(e.event(e.keys[0], time.Now()))
	}
	st := b.Stats()
	if st.Recorded != 25 || st.Dropped != 15 || st.Buffered != 10 || b.Dropped() != 15 {
		t.Fatalf("stats %+v, dropped %d: want 25 recorded, 10 buffered, 15 dropped", st, b.Dropped())
	}

	// The 10 kept are delivered when Redis returns.
	srv := e.server(t, Config{}, nil)
	proxy.Start(t)
	closeAndDrain(t, b, srv)
	if got := len(e.storedIDs(t)); got != 10 {
		t.Fatalf("%d events stored, want the 10 buffered", got)
	}
	checkStats(t, b.Stats(), 25, 10, 15)

	// Drops are logged in a few lines, not one per event, and add up.
	lines := logs.records(slog.LevelWarn, "usage events dropped")
	var total int64
	for _, rec := range lines {
		total += rec.int("dropped")
	}
	if len(lines) == 0 || len(lines) > 2 || total != 15 {
		t.Fatalf("%d drop log lines reporting %d events, want one or two reporting 15", len(lines), total)
	}
}

func TestCloseDeadline(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: deadAddr(t), ContextTimeoutEnabled: true})
	t.Cleanup(func() { rdb.Close() })
	logs := &capture{}
	b := NewBatcher(rdb, BatcherConfig{MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond}, slog.New(logs))
	for range 7 {
		b.Record(store.UsageEvent{ID: store.NewID(), WorkspaceID: "w", KeyID: "k", Time: time.Now()})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := b.Close(ctx)
	if err == nil {
		t.Fatal("Close reported success with no Redis")
	}
	st := b.Stats()
	if st.Dropped != 7 || st.Buffered != 0 || st.Enqueued != 0 {
		t.Fatalf("after a failed Close: %+v, want the 7 events counted as dropped", st)
	}
	if n := logs.count(slog.LevelError, "usage events lost at shutdown"); n != 1 {
		t.Fatalf("loss at shutdown logged %d times, want once", n)
	}
}

func TestRetention(t *testing.T) {
	t.Run("redis", func(t *testing.T) { testRetention(t, newEnv(t)) })
	t.Run("embedded", func(t *testing.T) {
		rds, err := OpenRedis(context.Background(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rds.Close() })
		e := &env{rdb: rds.Client, queues: Queues{Usage: QueueUsage, Maintenance: QueueMaintenance}}
		e.openStore(t)
		testRetention(t, e)
	})
}

func testRetention(t *testing.T, e *env) {
	now := time.Now().UTC()
	k := e.keys[0]
	old := []store.UsageEvent{e.event(k, now.Add(-100*24*time.Hour)), e.event(k, now.Add(-91*24*time.Hour))}
	recent := []store.UsageEvent{e.event(k, now.Add(-89*24*time.Hour)), e.event(k, now.Add(-time.Hour))}
	if err := e.svc.RecordUsage(context.Background(), slices.Concat(old, recent)); err != nil {
		t.Fatal(err)
	}

	// Starting a worker schedules retention for the current interval and
	// runs it.
	cfg := Config{Retention: 90 * 24 * time.Hour, RetentionInterval: time.Hour}
	e.server(t, cfg, nil)
	want := []string{recent[0].ID, recent[1].ID}
	slices.Sort(want)
	waitFor(t, "old usage logs to be deleted", func() bool { return len(e.storedIDs(t)) == 2 })
	if got := e.storedIDs(t); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want only the recent events %v", got, want)
	}

	// Another instance does not schedule the same interval again.
	other := NewServer(e.rdb, e.svc, Config{Queues: e.queues, Retention: cfg.Retention, RetentionInterval: time.Hour}, nil)
	var done []*asynq.TaskInfo
	waitFor(t, "the retention task to complete", func() bool {
		var err error
		done, err = asynq.NewInspectorFromRedisClient(e.rdb).ListCompletedTasks(e.queues.Maintenance)
		return err == nil && len(done) == 1
	})
	slot, err := time.Parse(time.RFC3339, strings.TrimPrefix(done[0].ID, "usage-retention-"))
	if err != nil {
		t.Fatalf("retention task id %q does not name its interval: %v", done[0].ID, err)
	}
	ok, err := other.enqueueRetention(context.Background(), slot.Add(time.Minute))
	if err != nil || ok {
		t.Fatalf("second instance, same interval: enqueued=%v err=%v, want refused", ok, err)
	}
	ok, err = other.enqueueRetention(context.Background(), slot.Add(time.Hour))
	if err != nil || !ok {
		t.Fatalf("next interval: enqueued=%v err=%v, want enqueued", ok, err)
	}
}

func TestRetentionHandler(t *testing.T) {
	e := newEnv(t)
	h := NewHandlers(e.svc, nil)
	now := time.Now().UTC()
	k := e.keys[0]
	events := []store.UsageEvent{e.event(k, now.Add(-2*time.Hour)), e.event(k, now.Add(-30*time.Minute))}
	if err := e.svc.RecordUsage(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	task, err := NewUsageRetentionTask(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandleUsageRetentionTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if got := e.storedIDs(t); !slices.Equal(got, []string{events[1].ID}) {
		t.Fatalf("kept %v, want only %s", got, events[1].ID)
	}
	bad := asynq.NewTask(TypeUsageRetention, []byte(`{"retention_seconds":0}`))
	if err := h.HandleUsageRetentionTask(context.Background(), bad); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("zero retention: %v, want SkipRetry", err)
	}
	if _, err := NewUsageRetentionTask(0); err == nil {
		t.Fatal("NewUsageRetentionTask(0) succeeded")
	}
}

func TestErrorHandlerLogsOnce(t *testing.T) {
	e := newEnv(t)
	logs := &capture{}
	e.server(t, Config{}, slog.New(logs))
	client := asynq.NewClientFromRedisClient(e.rdb)
	info, err := client.Enqueue(asynq.NewTask(TypeUsageBatch, []byte("not json")), asynq.Queue(e.queues.Usage))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(e.rdb)
	waitFor(t, "the invalid task to be archived", func() bool {
		ti, err := insp.GetTaskInfo(e.queues.Usage, info.ID)
		return err == nil && ti.State == asynq.TaskStateArchived
	})
	lines := logs.records(slog.LevelError, "task failed and is archived without retry")
	if len(lines) != 1 || lines[0].str("id") != info.ID || lines[0].str("task") != TypeUsageBatch {
		t.Fatalf("error log lines for the task: %+v, want one naming it", lines)
	}
}

func TestOpenRedis(t *testing.T) {
	t.Run("url", func(t *testing.T) {
		opts := redistest.Options(t)
		url := fmt.Sprintf("redis://%s/%d", opts.Addr, opts.DB)
		rds, err := OpenRedis(context.Background(), url, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rds.Close()
		if rds.Embedded() || rds.Addr() != opts.Addr {
			t.Fatalf("embedded=%v addr=%s, want %s", rds.Embedded(), rds.Addr(), opts.Addr)
		}
		if err := rds.Client.Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		if c := rds.ConnOpt(); c.Addr != opts.Addr || c.DB != opts.DB {
			t.Fatalf("asynq connection %+v", c)
		}
	})
	t.Run("bad url", func(t *testing.T) {
		if _, err := OpenRedis(context.Background(), "http://localhost", nil); err == nil {
			t.Fatal("OpenRedis accepted an http url")
		}
	})
	t.Run("embedded keys expire", func(t *testing.T) {
		rds, err := OpenRedis(context.Background(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer rds.Close()
		ctx := context.Background()
		if err := rds.Client.Set(ctx, "k", "v", time.Second).Err(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the key to expire", func() bool {
			n, err := rds.Client.Exists(ctx, "k").Result()
			return err == nil && n == 0
		})
		if err := rds.Close(); err != nil {
			t.Fatal(err)
		}
		if err := rds.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
}
