package worker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
)

// later returns a service over the env's store whose clock reads at.
func (e *env) later(at time.Time) *store.Service {
	return store.NewService(e.db, store.WithClock(func() time.Time { return at }))
}

// principal returns the principal of a new key of the env's workspace.
func (e *env) principal(t *testing.T, scopes ...store.Scope) store.Principal {
	t.Helper()
	_, raw, err := e.svc.CreateAPIKey(t.Context(), store.KeyInput{WorkspaceID: e.ws.ID, Name: "writer", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.svc.Authenticate(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// startServer starts a worker on the env's queues with svc, shut down at
// the end of the test. Maintenance tasks not set in cfg are off.
func (e *env) startServer(t *testing.T, svc *store.Service, cfg Config) {
	t.Helper()
	cfg.Queues = e.queues
	cfg.PollInterval = 50 * time.Millisecond
	for _, d := range []*time.Duration{&cfg.Retention, &cfg.TombstoneRetention, &cfg.DisableUnusedInterval,
		&cfg.WebhookSweepInterval, &cfg.DeliveryRetention, &cfg.KeyExpiryInterval} {
		if *d == 0 {
			*d = -1
		}
	}
	s := NewServer(e.rdb, svc, cfg, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
}

func TestPurgeExpired(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	sc := e.svc.Scoped(e.principal(t, store.WriteScope("notes"), store.ReadScope("notes")))
	gone, err := sc.CreateRecord(ctx, store.Notes, map[string]any{"content": "deleted long ago"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.DeleteRecord(ctx, store.Notes, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := sc.Idempotent(ctx, "retry-1", "fp", func(context.Context) (store.IdempotentResponse, error) {
		return store.IdempotentResponse{Status: 201, Body: []byte(`{}`)}, nil
	}); err != nil {
		t.Fatal(err)
	}
	tombstones := func() int {
		recs, err := e.db.FindRecords(ctx, store.Notes, e.ws.ID, store.RecordQuery{Limit: 10, Sort: store.SortCreatedAt, IncludeDeleted: true})
		if err != nil {
			t.Fatal(err)
		}
		return len(recs)
	}
	if tombstones() != 1 {
		t.Fatal("no tombstone to purge")
	}

	// 29 days on, the tombstone and the key (24 hours) are not both due:
	// only the key goes.
	e.startServer(t, e.later(time.Now().Add(29*24*time.Hour)), Config{TombstoneRetention: 30 * 24 * time.Hour, RetentionInterval: time.Hour})
	waitFor(t, "the expired idempotency key to be purged", func() bool {
		_, err := e.db.FindIdempotencyKey(ctx, e.ws.ID, "retry-1")
		return store.ErrorCode(err) == store.ENOTFOUND
	})
	if tombstones() != 1 {
		t.Fatal("a tombstone younger than its retention was purged")
	}

	// 31 days on, the handler removes the tombstone.
	h := NewHandlers(e.later(time.Now().Add(31*24*time.Hour)), nil)
	task, err := NewPurgeExpiredTask(30 * 24 * time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.HandlePurgeExpiredTask(ctx, task); err != nil {
		t.Fatal(err)
	}
	if n := tombstones(); n != 0 {
		t.Fatalf("%d tombstones left after their retention", n)
	}
	bad := asynq.NewTask(TypePurgeExpired, []byte(`{"tombstone_retention_seconds":0}`))
	if err := h.HandlePurgeExpiredTask(ctx, bad); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("zero retention: %v, want SkipRetry", err)
	}
	if _, err := NewPurgeExpiredTask(0); err == nil {
		t.Fatal("NewPurgeExpiredTask(0) succeeded")
	}
}

func TestDisableUnusedKeys(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	now := time.Now()
	// e.keys[0] was never used, e.keys[1] was used a day before the check,
	// e.keys[2] is already revoked.
	if err := e.svc.RecordUsage(ctx, []store.UsageEvent{e.event(e.keys[1], now.Add(90*24*time.Hour))}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.RevokeAPIKey(ctx, e.keys[2].ID); err != nil {
		t.Fatal(err)
	}
	// Another workspace, with the default policy (off), has an unused key.
	other, err := e.svc.CreateWorkspace(ctx, "Globex")
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _, err := e.svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: other.ID, Name: "idle", Scopes: []store.Scope{store.ScopeUsage}})
	if err != nil {
		t.Fatal(err)
	}
	status := func(wsID, id string) string {
		keys, err := e.svc.FindAPIKeys(ctx, wsID)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if k.ID == id {
				return k.Status(now)
			}
		}
		t.Fatalf("no key %s", id)
		return ""
	}
	check := now.Add(91 * 24 * time.Hour)

	// Without a policy nothing is revoked, however idle.
	h := NewHandlers(e.later(check), nil)
	if err := h.HandleDisableUnusedKeysTask(ctx, NewDisableUnusedKeysTask()); err != nil {
		t.Fatal(err)
	}
	if st := status(e.ws.ID, e.keys[0].ID); st != store.KeyActive {
		t.Fatalf("an idle key under no policy is %s", st)
	}

	// With disable_unused_after_days 90, the scheduled task revokes the key
	// idle for 91 days, and only it.
	if _, err := e.svc.SetKeyPolicy(ctx, e.ws.ID, store.KeyPolicy{DisableUnusedDays: 90}); err != nil {
		t.Fatal(err)
	}
	e.startServer(t, e.later(check), Config{DisableUnusedInterval: time.Hour})
	waitFor(t, "the idle key to be revoked", func() bool { return status(e.ws.ID, e.keys[0].ID) == store.KeyRevoked })
	var done []*asynq.TaskInfo
	waitFor(t, "the task to complete", func() bool {
		done, err = asynq.NewInspectorFromRedisClient(e.rdb).ListCompletedTasks(e.queues.Maintenance)
		return err == nil && len(done) == 1
	})
	if !strings.HasPrefix(done[0].ID, "keys-disable-unused-") || string(done[0].Result) != `{"revoked":1}` {
		t.Errorf("completed task %s with result %s, want keys-disable-unused-... revoking 1", done[0].ID, done[0].Result)
	}
	if st := status(e.ws.ID, e.keys[1].ID); st != store.KeyActive {
		t.Errorf("the recently used key is %s, want active", st)
	}
	if st := status(other.ID, otherKey.ID); st != store.KeyActive {
		t.Errorf("the idle key of a workspace without the policy is %s, want active", st)
	}
	if _, err := e.svc.Authenticate(ctx, e.raw[0]); store.ErrorCode(err) != store.ErrorCode(store.ErrRevokedKey) {
		t.Errorf("the revoked idle key authenticates: %v", err)
	}
}
