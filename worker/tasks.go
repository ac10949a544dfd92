package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"github.com/hustack/hustack/store"
)

// Task types.
const (
	// TypeUsageBatch stores a batch of usage events (UsageBatchPayload).
	TypeUsageBatch = "usage:batch"
	// TypeUsageRetention deletes usage logs older than the retention
	// (UsageRetentionPayload).
	TypeUsageRetention = "usage:retention"
	// TypePurgeExpired removes tombstones older than their retention and
	// expired idempotency keys (PurgeExpiredPayload).
	TypePurgeExpired = "records:purge-expired"
	// TypeKeysDisableUnused revokes the keys that the key policy of their
	// workspace says have gone unused for too long (no payload). Workspaces
	// whose policy does not ask for it (the default) are left alone.
	TypeKeysDisableUnused = "keys:disable-unused"

	// TypeWebhookFanOut turns events of the outbox into deliveries, hands
	// them to TypeWebhookDeliver tasks and removes the events from the
	// outbox (WebhookFanOutPayload). Its task id is FanOutTaskID.
	TypeWebhookFanOut = "webhook:fanout"
	// TypeWebhookDeliver makes one attempt at a delivery
	// (WebhookDeliverPayload).
	TypeWebhookDeliver = "webhook:deliver"
	// TypeWebhookSweep dispatches again the pending deliveries whose
	// attempt is overdue, because their task was lost, and disables the
	// subscriptions that have failed for too long (no payload).
	TypeWebhookSweep = "webhook:sweep"
	// TypeWebhookRetention deletes finished deliveries older than the
	// delivery log's retention (WebhookRetentionPayload).
	TypeWebhookRetention = "webhook:retention"
	// TypeKeysAnnounceExpiring records an api_key.expiring event for each
	// key about to expire, once per key (no payload).
	TypeKeysAnnounceExpiring = "keys:announce-expiring"
)

// Default queue names. Usage batches have their own queue so that
// maintenance never delays them; Server processes both, usage first (6:1).
// Webhook deliveries have a queue, and workers, of their own, so that slow
// receivers never hold back usage or maintenance; webhook fan-outs have
// another, with workers of its own, so that new events are never queued
// behind deliveries.
const (
	QueueUsage         = "usage"
	QueueMaintenance   = "maintenance"
	QueueWebhooks      = "webhooks"
	QueueWebhookFanOut = "webhooks-fanout"
)

// Options of the usage batch task.
//
// A batch insert takes milliseconds, so a batch still running after
// UsageBatchTimeout is stuck (a hung database call) and is better retried
// than left holding a worker for asynq's default 30 minutes.
//
// With asynq's backoff (n^4 + 15 s + jitter) UsageBatchMaxRetry retries span
// about two days, enough to ride out a database outage over a weekend; after
// that the task is archived, where it is kept for 90 days and can be run
// again from the asynq dashboard or Inspector. Processing is idempotent, so a
// batch may safely run more than once.
const (
	UsageBatchMaxRetry = 16
	UsageBatchTimeout  = 30 * time.Second
)

// Options of the maintenance tasks: deleting months of logs in one
// statement can take a while, and a failed run is simply repeated at the
// next period.
const (
	maintenanceMaxRetry = 3
	maintenanceTimeout  = 10 * time.Minute
)

// maintenanceOptions places a maintenance task on QueueMaintenance with the
// maintenance retry and timeout options.
func maintenanceOptions() []asynq.Option {
	return []asynq.Option{asynq.Queue(QueueMaintenance), asynq.MaxRetry(maintenanceMaxRetry), asynq.Timeout(maintenanceTimeout)}
}

// MaxBatchEvents bounds the events of one batch task, which keeps a task's
// payload (and the database statement behind it) reasonably small.
const MaxBatchEvents = 5000

// UsageBatchPayload is the payload of a TypeUsageBatch task.
type UsageBatchPayload struct {
	Events []store.UsageEvent `json:"events"`
}

// NewUsageBatchTask returns a task that stores events, on QueueUsage with the
// usage batch retry and timeout options.
func NewUsageBatchTask(events []store.UsageEvent) (*asynq.Task, error) {
	if len(events) == 0 || len(events) > MaxBatchEvents {
		return nil, fmt.Errorf("worker: a usage batch holds 1 to %d events, not %d", MaxBatchEvents, len(events))
	}
	payload, err := encodeUsageBatch(events)
	if err != nil {
		return nil, fmt.Errorf("worker: encode usage batch: %w", err)
	}
	return asynq.NewTask(TypeUsageBatch, payload,
		asynq.Queue(QueueUsage), asynq.MaxRetry(UsageBatchMaxRetry), asynq.Timeout(UsageBatchTimeout)), nil
}

// UsageRetentionPayload is the payload of a TypeUsageRetention task: logs
// older than RetentionSeconds before the time the task runs are deleted.
type UsageRetentionPayload struct {
	RetentionSeconds int64 `json:"retention_seconds"`
}

// NewUsageRetentionTask returns a task that deletes usage logs older than
// retention, on QueueMaintenance.
func NewUsageRetentionTask(retention time.Duration) (*asynq.Task, error) {
	if retention < time.Second {
		return nil, fmt.Errorf("worker: usage retention must be at least a second, not %v", retention)
	}
	payload, err := json.Marshal(UsageRetentionPayload{RetentionSeconds: int64(retention / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("worker: encode usage retention: %w", err)
	}
	return asynq.NewTask(TypeUsageRetention, payload, maintenanceOptions()...), nil
}

// PurgeExpiredPayload is the payload of a TypePurgeExpired task: tombstones
// of records deleted more than TombstoneRetentionSeconds before the task
// runs are removed, and so are idempotency keys past their expiry.
type PurgeExpiredPayload struct {
	TombstoneRetentionSeconds int64 `json:"tombstone_retention_seconds"`
}

// NewPurgeExpiredTask returns a task that purges tombstones older than
// tombstoneRetention and expired idempotency keys, on QueueMaintenance.
func NewPurgeExpiredTask(tombstoneRetention time.Duration) (*asynq.Task, error) {
	if tombstoneRetention < time.Second {
		return nil, fmt.Errorf("worker: tombstone retention must be at least a second, not %v", tombstoneRetention)
	}
	payload, err := json.Marshal(PurgeExpiredPayload{TombstoneRetentionSeconds: int64(tombstoneRetention / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("worker: encode purge: %w", err)
	}
	return asynq.NewTask(TypePurgeExpired, payload, maintenanceOptions()...), nil
}

// NewDisableUnusedKeysTask returns a task that revokes unused keys as the
// workspaces' key policies ask, on QueueMaintenance.
func NewDisableUnusedKeysTask() *asynq.Task {
	return asynq.NewTask(TypeKeysDisableUnused, nil, maintenanceOptions()...)
}

// Handlers processes the tasks of this package against the store.
type Handlers struct {
	svc *store.Service
	log *slog.Logger
}

// NewHandlers returns the task handlers over svc. logger receives one line
// per retention run; task failures are logged by the Server's error handler.
func NewHandlers(svc *store.Service, logger *slog.Logger) *Handlers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Handlers{svc: svc, log: logger}
}

// Register routes the task types of this package to h on mux.
func (h *Handlers) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeUsageBatch, h.HandleUsageBatchTask)
	mux.HandleFunc(TypeUsageRetention, h.HandleUsageRetentionTask)
	mux.HandleFunc(TypePurgeExpired, h.HandlePurgeExpiredTask)
	mux.HandleFunc(TypeKeysDisableUnused, h.HandleDisableUnusedKeysTask)
}

// errInvalidPayload marks payloads that no retry can fix.
var errInvalidPayload = errors.New("invalid payload")

// HandleUsageBatchTask stores the events of a TypeUsageBatch task and
// advances the last-used time of their keys. A malformed payload is archived
// at once (asynq.SkipRetry); a store error is returned as is so that asynq
// retries the task. Running the same task twice adds no rows.
func (h *Handlers) HandleUsageBatchTask(ctx context.Context, t *asynq.Task) error {
	p, err := decodeUsageBatch(t.Payload())
	if err != nil {
		return fmt.Errorf("usage batch: %w: %v: %w", errInvalidPayload, err, asynq.SkipRetry)
	}
	if len(p.Events) == 0 {
		return fmt.Errorf("usage batch: %w: no events: %w", errInvalidPayload, asynq.SkipRetry)
	}
	for i, e := range p.Events {
		if err := validEvent(e); err != nil {
			return fmt.Errorf("usage batch: %w: event %d: %v: %w", errInvalidPayload, i, err, asynq.SkipRetry)
		}
	}
	if err := h.svc.RecordUsage(ctx, p.Events); err != nil {
		return fmt.Errorf("usage batch: record %d events: %w", len(p.Events), err)
	}
	return nil
}

func validEvent(e store.UsageEvent) error {
	switch {
	case e.ID == "":
		return errors.New("no id")
	case e.WorkspaceID == "":
		return errors.New("no workspace_id")
	case e.KeyID == "":
		return errors.New("no key_id")
	case e.Time.IsZero():
		return errors.New("no time")
	}
	return nil
}

// HandleUsageRetentionTask deletes usage logs older than the payload's
// retention, counted back from now. Store errors are returned for a retry.
func (h *Handlers) HandleUsageRetentionTask(ctx context.Context, t *asynq.Task) error {
	var p UsageRetentionPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("usage retention: %w: %v: %w", errInvalidPayload, err, asynq.SkipRetry)
	}
	if p.RetentionSeconds < 1 {
		return fmt.Errorf("usage retention: %w: retention_seconds %d: %w", errInvalidPayload, p.RetentionSeconds, asynq.SkipRetry)
	}
	before := h.svc.Now().Add(-time.Duration(p.RetentionSeconds) * time.Second)
	n, err := h.svc.DeleteUsageBefore(ctx, before)
	if err != nil {
		return fmt.Errorf("usage retention: delete before %s: %w", before.Format(time.RFC3339), err)
	}
	h.log.Info("usage logs past retention deleted", "deleted", n, "before", before)
	if w := t.ResultWriter(); w != nil {
		// The result is informational (shown by the asynq dashboard); failing
		// to write it does not undo the deletion.
		_, _ = fmt.Fprintf(w, `{"deleted":%d,"before":%q}`, n, before.Format(time.RFC3339))
	}
	return nil
}

// HandlePurgeExpiredTask removes tombstones older than the payload's
// retention, counted back from now, and expired idempotency keys. Store
// errors are returned for a retry; a repeated run removes nothing more.
func (h *Handlers) HandlePurgeExpiredTask(ctx context.Context, t *asynq.Task) error {
	var p PurgeExpiredPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("purge expired: %w: %v: %w", errInvalidPayload, err, asynq.SkipRetry)
	}
	if p.TombstoneRetentionSeconds < 1 {
		return fmt.Errorf("purge expired: %w: tombstone_retention_seconds %d: %w", errInvalidPayload, p.TombstoneRetentionSeconds, asynq.SkipRetry)
	}
	retention := time.Duration(p.TombstoneRetentionSeconds) * time.Second
	tombs, keys, err := h.svc.PurgeExpired(ctx, retention)
	if err != nil {
		return fmt.Errorf("purge expired: %w", err)
	}
	h.log.Info("tombstones and idempotency keys past retention purged", "tombstones", tombs, "idempotency_keys", keys,
		"tombstone_retention", retention)
	if w := t.ResultWriter(); w != nil {
		_, _ = fmt.Fprintf(w, `{"tombstones":%d,"idempotency_keys":%d}`, tombs, keys)
	}
	return nil
}

// HandleDisableUnusedKeysTask revokes the keys unused for longer than their
// workspace's policy allows. Store errors are returned for a retry; keys
// revoked before the error stay revoked, and a repeated run skips them.
func (h *Handlers) HandleDisableUnusedKeysTask(ctx context.Context, t *asynq.Task) error {
	n, err := h.svc.DisableUnusedKeys(ctx)
	if n > 0 {
		h.log.Info("unused API keys revoked by key policy", "revoked", n)
	}
	if err != nil {
		return fmt.Errorf("disable unused keys: %d revoked before: %w", n, err)
	}
	if w := t.ResultWriter(); w != nil {
		_, _ = fmt.Fprintf(w, `{"revoked":%d}`, n)
	}
	return nil
}
