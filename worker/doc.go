// Package worker moves usage events from the API to the store through asynq
// and Redis, delivers webhooks, and runs the periodic maintenance: usage
// logs past their retention, tombstones and idempotency keys past theirs,
// API keys that their workspace's policy says have gone unused too long,
// deliveries past the delivery log's retention, and the announcement of
// keys about to expire.
//
//   - OpenRedis connects to REDIS_URL, or starts an embedded Redis when it is
//     empty.
//   - Batcher is the API's usage recorder (api.UsageRecorder): it buffers
//     events in the process and enqueues them in TypeUsageBatch tasks.
//   - Server processes those tasks into the store, and schedules and runs
//     TypeUsageRetention, TypePurgeExpired, TypeKeysDisableUnused,
//     TypeWebhookSweep, TypeWebhookRetention and TypeKeysAnnounceExpiring,
//     each once per interval across all Servers. It also relays webhook
//     events, fans them out and delivers them, with workers of its own.
//
// # Webhooks
//
// Every write that changes a record or a key's life stores its event in the
// database's outbox, in the same operation. The Server's relay claims events
// from the outbox (at once when its own Service signals a write, else every
// RelayInterval) and enqueues them, a hundred at a time, in
// TypeWebhookFanOut tasks on a queue of their own (Queues.WebhookFanOut,
// "webhooks-fanout" by default), served by WebhookFanOutConcurrency workers
// of their own, so that new events never wait behind deliveries. The task
// id of a fan-out derives from its events (FanOutTaskID): events claimed
// again while their fan-out is queued, waiting for a retry or running are
// not queued twice, and a fan-out archived after its retries is replaced.
// The fan-out stores one delivery per event and subscription that should
// get it, enqueues a TypeWebhookDeliver task for each on QueueWebhooks, and
// only then removes the events from the outbox: if Redis is away or loses
// its tasks, the events are claimed again (after the Service's
// EventClaimTimeout, 30 s unless store.WithEventClaimTimeout says otherwise)
// and nothing is lost. Fanning out twice stores and sends nothing twice,
// because a delivery's id derives from its event and subscription and a
// delivery task's id from the delivery and its attempt (DeliveryTaskID).
// Events are fanned out together, and one at a time if that fails, so that
// one bad event does not hold back its batch: an event that can never be
// sent (its data is not a JSON object) is logged at Error, with its id, and
// removed from the outbox; a store or Redis error fails the task, which is
// retried.
//
// A delivery task makes one attempt: a POST of the event's JSON
// ({"id", "type", "created_at", "workspace_id", "data"}) with the headers
// webhook-id (the event's id, the same for every attempt and replay: the key
// for receivers to drop duplicates), webhook-timestamp and webhook-signature,
// "v1," and the base64 HMAC-SHA256 of "id.timestamp.body" keyed with the
// subscription's secret (the Standard Webhooks scheme; see Sign and Verify),
// signed afresh for every attempt. An attempt has WebhookTimeout (10 s) in
// all; redirects are not followed, and every address connected to is checked
// against the Service's store.TargetPolicy after DNS resolution, so that a
// name resolving to loopback, a private network or a metadata address is
// refused unless HUSTACK_WEBHOOK_ALLOW_INSECURE is set.
//
// Before the attempt the subscription is read again: a delivery whose
// subscription was deleted, disabled or has expired, or no longer asks for
// the event's type or lacks the scope for it (its events were changed by a
// PATCH after the event), is cancelled, and the reason logged. Test pings
// are sent whatever the subscription's state. One Server makes at most
// WebhookPerSubscription (4) deliveries to a subscription at once, so that
// a slow receiver holds a few of the WebhookConcurrency (20) delivery
// workers at most; its other deliveries are put back for about a second,
// with no attempt made or counted.
//
// The answer decides what follows:
//
//   - 2xx: delivered.
//   - 410 Gone: failed, and the subscription is deleted (REST hooks
//     unsubscribe so).
//   - any other 4xx but 408, 409, 425 and 429: failed, not retried.
//   - an address refused by the target policy: failed, not retried, with
//     "refused: <address> is not a public address" in the history.
//   - 5xx, 408, 409, 425, 429, 3xx, another network error or a timeout:
//     retried on the schedule, waiting at least what Retry-After asks on a
//     429 or 503 (at most MaxRetryAfter).
//
// The default schedule (DefaultWebhookRetrySchedule) makes the first
// attempt at once, then retries after 10 s, 1 min, 5 min, 30 min, 2 h, 5 h,
// 10 h, 14 h, 20 h and 20 h, each wait with ±20% jitter: 11 attempts over
// about three days, after which the delivery is failed. Config.WebhookRetrySchedule
// replaces it (HUSTACK_WEBHOOK_RETRY_SCHEDULE, "1s,2s,5s"). Every failed
// attempt but a 410 extends the subscription's failure streak; a
// subscription failing without a success for WebhookDisableAfter (72 h) is
// disabled, with a reason an admin can read, by its next failed attempt or
// else by the sweep (a delivery's schedule can end before 72 h, jitter
// included). Deliveries are at least once and in no particular order.
//
// Each Server runs the sweep every WebhookSweepInterval (1 min): pending
// deliveries more than WebhookSweepGrace (1 min) overdue, whose task was
// lost, are dispatched again, and subscriptions failing for longer than
// WebhookDisableAfter are disabled. An API process that does not run a
// Server sets NewDispatcher on its Service, so that replays and test pings
// leave at once rather than at the next sweep.
//
// # Wiring
//
// A process that serves the API and runs the worker wires them so:
//
//	rds, err := worker.OpenRedis(ctx, os.Getenv("REDIS_URL"), logger)
//	batcher := worker.NewBatcher(rds.Client, worker.BatcherConfig{}, logger)
//	svc.SetDispatcher(worker.NewDispatcher(rds.Client, ""))
//	srv := worker.NewServer(rds.Client, svc, worker.Config{Retention: retention}, logger)
//	err = srv.Start()
//	// ... api.New(api.Config{Usage: batcher, ...}) serves requests ...
//
// and shuts down in this order: stop serving HTTP; batcher.Close(ctx), which
// enqueues what is buffered; srv.Drain(ctx) when Redis is embedded (its
// queued tasks would die with the process); srv.Shutdown(), which lets
// running deliveries finish within ShutdownTimeout and puts the others back
// in their queue; rds.Close(). Webhook tasks lost with an embedded Redis are
// recovered from the database when the process starts again (events stay
// in the outbox until fanned out; pending deliveries are swept).
// `hustack worker` runs the Server alone; `serve` with the worker off runs
// only the Batcher, and the tasks wait in Redis for a worker.
package worker
