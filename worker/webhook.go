package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/hustack/hustack/store"
)

// DefaultWebhookRetrySchedule returns the waits between the attempts of a
// delivery: the first attempt is made at once, then again after 10 s, 1 min,
// 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h and 20 h, each wait with ±20%
// jitter: 11 attempts over about three days (71 h 36 min 10 s without
// jitter). A delivery that still fails after the last one is failed.
func DefaultWebhookRetrySchedule() []time.Duration {
	return []time.Duration{10 * time.Second, time.Minute, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
		5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 20 * time.Hour}
}

// MaxWebhookRetries bounds the length of a retry schedule.
const MaxWebhookRetries = 50

// ParseRetrySchedule reads a retry schedule written as comma-separated
// durations ("10s,1m,5m"), such as HUSTACK_WEBHOOK_RETRY_SCHEDULE: the
// waits before the second, third... attempt. Each must be positive.
func ParseRetrySchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		d, err := time.ParseDuration(part)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("worker: retry schedule %q: %q is not a positive duration such as 10s or 5m", s, part)
		}
		out = append(out, d)
	}
	if len(out) > MaxWebhookRetries {
		return nil, fmt.Errorf("worker: retry schedule %q: at most %d waits", s, MaxWebhookRetries)
	}
	return out, nil
}

// Webhook delivery defaults and limits.
const (
	// DefaultWebhookTimeout bounds one attempt: connecting, sending the
	// body and reading the answer.
	DefaultWebhookTimeout = 10 * time.Second
	// MaxWebhookTimeout is the longest attempt Config.WebhookTimeout may set.
	MaxWebhookTimeout = 2 * time.Minute
	// DefaultWebhookDisableAfter is how long a subscription may fail without
	// a success before the worker disables it.
	DefaultWebhookDisableAfter = 72 * time.Hour
	// DefaultWebhookConcurrency is the number of deliveries made at once by
	// one Server.
	DefaultWebhookConcurrency = 20
	// DefaultWebhookPerSubscription is the number of deliveries to one
	// subscription one Server makes at once; the others wait their turn
	// without holding a worker.
	DefaultWebhookPerSubscription = 4
	// DefaultWebhookFanOutConcurrency is the number of fan-outs one Server
	// runs at once, on workers of their own.
	DefaultWebhookFanOutConcurrency = 2
	// DefaultRelayInterval is how often the relay looks for events written
	// by other processes; events written through the Server's own Service
	// wake it at once.
	DefaultRelayInterval = 500 * time.Millisecond
	// DefaultWebhookPollInterval is how often idle delivery workers look
	// for new tasks. A change waits for this twice (fan-out, then delivery),
	// so it is kept short; each look is one Redis call.
	DefaultWebhookPollInterval = 250 * time.Millisecond
	// DefaultWebhookSweepInterval is how often overdue deliveries are looked
	// for (their task was lost).
	DefaultWebhookSweepInterval = time.Minute
	// DefaultDeliveryRetention is how long finished deliveries stay in the
	// delivery log.
	DefaultDeliveryRetention = 30 * 24 * time.Hour
	// DefaultKeyExpiryInterval is how often keys about to expire are
	// announced (api_key.expiring).
	DefaultKeyExpiryInterval = time.Hour
	// MaxRetryAfter caps the wait a receiver can ask for with Retry-After.
	MaxRetryAfter = 24 * time.Hour
	// SweepGrace is how overdue a pending delivery must be, by default, for
	// the sweep to dispatch it again: its task is then taken to be lost.
	SweepGrace = time.Minute
	// RelayBatch is the most events one fan-out task carries.
	RelayBatch = 100
)

// Limits of one attempt.
const (
	maxResponseBody  = 64 << 10 // read, then discarded
	maxAttemptError  = 300      // characters of Attempt.Error
	sweepLimit       = 500      // deliveries dispatched again per sweep
	dispatchParallel = 8        // enqueues at once when dispatching many deliveries
)

// Task options. Webhook tasks fail only on store or Redis errors (a failed
// HTTP attempt is recorded and the next one scheduled as a new task), and
// are retried after 1 s, doubling up to a minute (webhookRetryDelay): ten
// retries span about six minutes. Then the relay claims the events of an
// archived fan-out again and replaces the task, and the sweep replaces an
// archived delivery task.
const (
	fanOutMaxRetry  = 10
	fanOutTimeout   = 5 * time.Minute
	deliverMaxRetry = 10
	deliverTimeout  = MaxWebhookTimeout + time.Minute
	webhookUA       = "Hustack-Webhooks/1"
	// busyRetryDelay is how long a delivery waits when its subscription
	// has all the deliveries in flight it may have.
	busyRetryDelay = time.Second
)

// errSubscriptionBusy is returned, wrapped, by a delivery task whose
// subscription has Config.WebhookPerSubscription deliveries in flight in
// this Server. asynq puts the task back for busyRetryDelay without counting
// a retry (see Server), and it keeps its task id.
var errSubscriptionBusy = errors.New("the subscription has as many deliveries in flight as allowed; the delivery waits its turn")

// WebhookFanOutPayload is the payload of a TypeWebhookFanOut task: events
// claimed from the outbox.
type WebhookFanOutPayload struct {
	Events []store.Event `json:"events"`
}

// NewWebhookFanOutTask returns a task that fans events out, on
// QueueWebhookFanOut, with the task id FanOutTaskID(events): while a
// fan-out of the same events is queued, waiting for a retry or running,
// enqueueing another is refused with asynq.ErrTaskIDConflict.
func NewWebhookFanOutTask(events []store.Event) (*asynq.Task, error) {
	if len(events) == 0 {
		return nil, errors.New("worker: a fan-out holds at least one event")
	}
	payload, err := json.Marshal(WebhookFanOutPayload{Events: events})
	if err != nil {
		return nil, fmt.Errorf("worker: encode fan-out: %w", err)
	}
	return asynq.NewTask(TypeWebhookFanOut, payload, asynq.Queue(QueueWebhookFanOut), asynq.TaskID(FanOutTaskID(events)),
		asynq.MaxRetry(fanOutMaxRetry), asynq.Timeout(fanOutTimeout)), nil
}

// FanOutTaskID is the asynq task id of a fan-out of events: "fanout:" and
// the hex SHA-256 of their sorted ids, the same whatever their order.
func FanOutTaskID(events []store.Event) string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	slices.Sort(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, "\n")))
	return "fanout:" + hex.EncodeToString(sum[:])
}

// WebhookDeliverPayload is the payload of a TypeWebhookDeliver task.
// Attempt is the number of attempts the delivery had when the task was
// made (0 for the first): a task whose delivery has moved on since is a
// stale duplicate, and does nothing. WebhookID names the subscription, so
// that its deliveries in flight are counted before the delivery is read.
type WebhookDeliverPayload struct {
	WorkspaceID string `json:"workspace_id"`
	DeliveryID  string `json:"delivery_id"`
	Attempt     int    `json:"attempt"`
	WebhookID   string `json:"webhook_id,omitempty"`
}

// NewWebhookDeliverTask returns a task that makes the next attempt of d, on
// QueueWebhooks. Enqueue it with the id DeliveryTaskID(d.ID, d.Attempts),
// so that dispatching one attempt twice is refused as a conflict.
func NewWebhookDeliverTask(d *store.Delivery) (*asynq.Task, error) {
	payload, err := json.Marshal(WebhookDeliverPayload{WorkspaceID: d.WorkspaceID, DeliveryID: d.ID, Attempt: d.Attempts,
		WebhookID: d.WebhookID})
	if err != nil {
		return nil, fmt.Errorf("worker: encode delivery: %w", err)
	}
	return asynq.NewTask(TypeWebhookDeliver, payload,
		asynq.Queue(QueueWebhooks), asynq.MaxRetry(deliverMaxRetry), asynq.Timeout(deliverTimeout)), nil
}

// DeliveryTaskID is the asynq task id of a delivery's attempt after the
// given number of attempts.
func DeliveryTaskID(deliveryID string, attempts int) string {
	return "delivery:" + deliveryID + ":" + strconv.Itoa(attempts)
}

// WebhookRetentionPayload is the payload of a TypeWebhookRetention task:
// finished deliveries created more than RetentionSeconds before the task
// runs are deleted.
type WebhookRetentionPayload struct {
	RetentionSeconds int64 `json:"retention_seconds"`
}

// NewWebhookRetentionTask returns a task that deletes finished deliveries
// older than retention, on QueueMaintenance.
func NewWebhookRetentionTask(retention time.Duration) (*asynq.Task, error) {
	if retention < time.Second {
		return nil, fmt.Errorf("worker: delivery retention must be at least a second, not %v", retention)
	}
	payload, err := json.Marshal(WebhookRetentionPayload{RetentionSeconds: int64(retention / time.Second)})
	if err != nil {
		return nil, fmt.Errorf("worker: encode delivery retention: %w", err)
	}
	return asynq.NewTask(TypeWebhookRetention, payload, maintenanceOptions()...), nil
}

// NewWebhookSweepTask returns a task that dispatches overdue deliveries
// again, on QueueMaintenance.
func NewWebhookSweepTask() *asynq.Task {
	return asynq.NewTask(TypeWebhookSweep, nil, maintenanceOptions()...)
}

// NewAnnounceExpiringKeysTask returns a task that announces the keys about
// to expire, on QueueMaintenance.
func NewAnnounceExpiringKeysTask() *asynq.Task {
	return asynq.NewTask(TypeKeysAnnounceExpiring, nil, maintenanceOptions()...)
}

// NewDispatcher returns a store.Dispatcher that hands deliveries to the
// delivery workers through rdb, on the given queue (QueueWebhooks when
// empty). The API process sets it with Service.SetDispatcher, so that
// replays and test pings leave at once rather than at the next sweep.
func NewDispatcher(rdb redis.UniversalClient, queue string) store.Dispatcher {
	if queue == "" {
		queue = QueueWebhooks
	}
	client := asynq.NewClientFromRedisClient(rdb)
	return func(ctx context.Context, ds []*store.Delivery) error {
		return dispatch(ctx, client, queue, ds)
	}
}

// dispatch enqueues the next attempt of each pending delivery, a few at a
// time, at its NextAttemptAt. An attempt already queued is no error.
func dispatch(ctx context.Context, client *asynq.Client, queue string, ds []*store.Delivery) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, dispatchParallel)
	)
	for _, d := range ds {
		if d.Status != store.DeliveryPending {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if _, err := enqueueDelivery(ctx, client, queue, d); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("worker: dispatch %d of %d deliveries failed: %w", len(errs), len(ds), errs[0])
	}
	return nil
}

// enqueueDelivery enqueues d's next attempt. It reports whether the task
// id was already taken (the attempt is queued, running or archived).
func enqueueDelivery(ctx context.Context, client *asynq.Client, queue string, d *store.Delivery) (conflict bool, err error) {
	task, opts, err := deliveryTask(d, queue)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = client.EnqueueContext(ctx, task, opts...)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return true, nil
	}
	return false, err
}

// deliveryTask returns the task of d's next attempt and the options to
// enqueue it with on queue.
func deliveryTask(d *store.Delivery, queue string) (*asynq.Task, []asynq.Option, error) {
	task, err := NewWebhookDeliverTask(d)
	if err != nil {
		return nil, nil, err
	}
	opts := []asynq.Option{asynq.Queue(queue), asynq.TaskID(DeliveryTaskID(d.ID, d.Attempts))}
	if d.NextAttemptAt != nil && d.NextAttemptAt.After(time.Now()) {
		opts = append(opts, asynq.ProcessAt(*d.NextAttemptAt))
	}
	return task, opts, nil
}

// uniqueEnqueuer enqueues tasks whose id says what they do (a fan-out of
// given events, a delivery's attempt), so that the same work is never
// queued twice, while a task of that id that is finished (archived once its
// retries were used up, or kept as completed) does not block the work
// forever.
type uniqueEnqueuer struct {
	rdb       redis.UniversalClient
	client    *asynq.Client
	inspector *asynq.Inspector
}

func newUniqueEnqueuer(rdb redis.UniversalClient) *uniqueEnqueuer {
	return &uniqueEnqueuer{rdb: rdb, client: asynq.NewClientFromRedisClient(rdb),
		inspector: asynq.NewInspectorFromRedisClient(rdb)}
}

// enqueue enqueues task with the given id (also set in opts) on queue.
// When the id is taken by a finished task, that task is deleted and task
// enqueued in its place; a task still queued, scheduled, waiting for a
// retry or running is left alone, as it does the work. It reports whether
// it enqueued.
func (u *uniqueEnqueuer) enqueue(ctx context.Context, task *asynq.Task, queue, id string, opts ...asynq.Option) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for range 2 {
		_, err := u.client.EnqueueContext(ctx, task, opts...)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return err == nil, err
		}
		state, err := u.state(ctx, queue, id)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound):
			continue // finished and removed meanwhile
		case err != nil:
			return false, err
		case state != asynq.TaskStateArchived && state != asynq.TaskStateCompleted:
			return false, nil
		}
		if err := u.inspector.DeleteTask(queue, id); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
			return false, err
		}
	}
	return false, nil // another process enqueued it meanwhile
}

// state returns the state of task id on queue. The Inspector refuses queues
// missing from asynq's queue registry (asynq:queues), which asynq does not
// rebuild after Redis loses its data; the queue is then registered again.
func (u *uniqueEnqueuer) state(ctx context.Context, queue, id string) (asynq.TaskState, error) {
	info, err := u.inspector.GetTaskInfo(queue, id)
	if errors.Is(err, asynq.ErrQueueNotFound) {
		if err := u.rdb.SAdd(ctx, "asynq:queues", queue).Err(); err != nil {
			return 0, err
		}
		info, err = u.inspector.GetTaskInfo(queue, id)
	}
	if err != nil {
		return 0, err
	}
	return info.State, nil
}

// WebhookHandlers processes the webhook tasks: fan-out, delivery, the sweep
// of lost deliveries, the delivery log's retention and the announcement of
// expiring keys.
type WebhookHandlers struct {
	svc    *store.Service
	client *asynq.Client
	unique *uniqueEnqueuer
	http   *http.Client
	cfg    Config
	log    *slog.Logger
	redis  outage // failed enqueues of next attempts
	slots  subscriptionSlots
}

// subscriptionSlots counts the deliveries in flight per subscription.
type subscriptionSlots struct {
	max int // <= 0: no limit

	mu sync.Mutex
	n  map[string]int
}

// acquire takes a slot of the subscription, unless it has max in flight.
func (s *subscriptionSlots) acquire(webhookID string) bool {
	if s.max <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[webhookID] >= s.max {
		return false
	}
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[webhookID]++
	return true
}

func (s *subscriptionSlots) release(webhookID string) {
	if s.max <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[webhookID] <= 1 {
		delete(s.n, webhookID)
		return
	}
	s.n[webhookID]--
}

// NewWebhookHandlers returns the webhook task handlers over svc, enqueueing
// through rdb with the webhook settings of cfg (defaults for zero values).
// Deliveries go only where svc.TargetPolicy() allows, checked for every
// address connected to.
func NewWebhookHandlers(rdb redis.UniversalClient, svc *store.Service, cfg Config, logger *slog.Logger) *WebhookHandlers {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	unique := newUniqueEnqueuer(rdb)
	return &WebhookHandlers{
		svc:    svc,
		client: unique.client,
		unique: unique,
		http:   newWebhookClient(svc.TargetPolicy(), cfg.WebhookConcurrency),
		cfg:    cfg,
		log:    logger,
		slots:  subscriptionSlots{max: cfg.WebhookPerSubscription},
	}
}

// Register routes the webhook task types to h on mux.
func (h *WebhookHandlers) Register(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeWebhookFanOut, h.HandleWebhookFanOutTask)
	mux.HandleFunc(TypeWebhookDeliver, h.HandleWebhookDeliverTask)
	mux.HandleFunc(TypeWebhookSweep, h.HandleWebhookSweepTask)
	mux.HandleFunc(TypeWebhookRetention, h.HandleWebhookRetentionTask)
	mux.HandleFunc(TypeKeysAnnounceExpiring, h.HandleAnnounceExpiringKeysTask)
}

// newWebhookClient returns the HTTP client of deliveries: no proxy from the
// environment, no redirects followed, and every address it connects to,
// after DNS resolution, checked against policy (so a name that resolves to
// loopback or a private network is refused even if it resolved to a public
// address when the subscription was made).
func newWebhookClient(policy store.TargetPolicy, conns int) *http.Client {
	dialer := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			ip, err := netip.ParseAddr(host)
			if err != nil {
				return fmt.Errorf("webhook: unexpected address %q", address)
			}
			if err := policy.CheckAddr(ip); err != nil {
				return &refusedError{addr: ip.Unmap()}
			}
			return nil
		},
	}
	transport := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    max(conns, 2),
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// refusedError is a connection the target policy refused: the address is
// not public and HUSTACK_WEBHOOK_ALLOW_INSECURE is not set. Retrying does
// not help (DNS that moved a name onto a private network is no outage), so
// the attempt is final.
type refusedError struct{ addr netip.Addr }

func (e *refusedError) Error() string {
	return fmt.Sprintf("refused: %s is not a public address; webhooks are only sent to the public internet "+
		"unless HUSTACK_WEBHOOK_ALLOW_INSECURE is set", e.addr)
}

// HandleWebhookFanOutTask stores the deliveries of the payload's events,
// dispatches them and removes the events from the outbox, in that order:
// an event leaves the outbox only once its deliveries are stored and
// queued. On a store or Redis error the task is retried (and the relay
// claims the events again after the Service's EventClaimTimeout); doing it
// twice stores and sends nothing twice.
//
// The events are fanned out together; if that fails, one at a time, so that
// one bad event does not hold back the others: an event that can never be
// fanned out (its data is not a JSON object) is logged at Error and removed
// from the outbox, while a store error still fails the task.
func (h *WebhookHandlers) HandleWebhookFanOutTask(ctx context.Context, t *asynq.Task) error {
	var p WebhookFanOutPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("webhook fan-out: %w: %v: %w", errInvalidPayload, err, asynq.SkipRetry)
	}
	if len(p.Events) == 0 {
		return fmt.Errorf("webhook fan-out: %w: no events: %w", errInvalidPayload, asynq.SkipRetry)
	}
	ds, err := h.svc.FanOut(ctx, p.Events)
	if err != nil {
		if len(p.Events) == 1 && !unprocessable(err) {
			return fmt.Errorf("webhook fan-out of event %s: %w", p.Events[0].ID, err)
		}
		return h.fanOutEach(ctx, p.Events)
	}
	if err := dispatch(ctx, h.client, h.cfg.Queues.Webhooks, ds); err != nil {
		return fmt.Errorf("webhook fan-out of %d events: %w", len(p.Events), err)
	}
	if err := h.svc.AckEvents(ctx, eventIDs(p.Events)); err != nil {
		return fmt.Errorf("webhook fan-out: remove %d events from the outbox: %w", len(p.Events), err)
	}
	return nil
}

// fanOutEach fans events out one at a time, after fanning them out together
// failed. It stops at the first store error, keeping what was done before
// it.
func (h *WebhookHandlers) fanOutEach(ctx context.Context, events []store.Event) error {
	var (
		ds      []*store.Delivery
		done    []store.Event // fanned out: removed once dispatched
		dropped []string      // never to be fanned out: removed at once
		failed  error
	)
	for _, ev := range events {
		got, err := h.svc.FanOut(ctx, []store.Event{ev})
		if err != nil && !unprocessable(err) {
			failed = fmt.Errorf("webhook fan-out of event %s (%d of %d events done): %w", ev.ID, len(done)+len(dropped), len(events), err)
			break
		}
		if err != nil {
			h.log.Error("webhook event dropped: it can never be delivered", "event_id", ev.ID, "event_type", ev.Type,
				"workspace_id", ev.WorkspaceID, "err", err)
			dropped = append(dropped, ev.ID)
			continue
		}
		ds = append(ds, got...)
		done = append(done, ev)
	}
	if err := h.svc.AckEvents(ctx, dropped); err != nil {
		return fmt.Errorf("webhook fan-out: remove %d unprocessable events from the outbox: %w", len(dropped), err)
	}
	if err := dispatch(ctx, h.client, h.cfg.Queues.Webhooks, ds); err != nil {
		return errors.Join(fmt.Errorf("webhook fan-out of %d events: %w", len(done), err), failed)
	}
	if err := h.svc.AckEvents(ctx, eventIDs(done)); err != nil {
		return errors.Join(fmt.Errorf("webhook fan-out: remove %d events from the outbox: %w", len(done), err), failed)
	}
	return failed
}

// unprocessable reports whether fanning an event out failed because of the
// event itself, which no retry changes: data that does not decode as a JSON
// object, or that the store refuses as invalid.
func unprocessable(err error) bool {
	var (
		syntax    *json.SyntaxError
		typ       *json.UnmarshalTypeError
		marshaler *json.MarshalerError
	)
	return errors.As(err, &syntax) || errors.As(err, &typ) || errors.As(err, &marshaler) ||
		store.ErrorCode(err) == store.EBADREQUEST
}

func eventIDs(events []store.Event) []string {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	return ids
}

// attemptKind is how an attempt ended.
type attemptKind int

const (
	attemptDelivered attemptKind = iota // 2xx
	attemptGone                         // 410: unsubscribe
	attemptFinal                        // a 4xx no retry can fix, or a URL or address no longer allowed
	attemptRetry                        // 5xx, 408/409/425/429, 3xx, network error or timeout
)

// attemptResult is what one attempt produced.
type attemptResult struct {
	kind       attemptKind
	code       int
	latency    time.Duration
	err        string        // "" for a 2xx
	retryAfter time.Duration // asked for by a 429 or 503
	aborted    bool          // the task's context ended (shutdown): nothing happened
}

// HandleWebhookDeliverTask makes one attempt at a delivery: it POSTs the
// event, signed afresh, to the subscription's URL, records the attempt and
// schedules the next one if it is to be retried (see Config.WebhookRetrySchedule).
// A delivery that is finished or has moved past the task's attempt is left
// alone. One whose subscription is gone, disabled or expired, or no longer
// receives the event's type (its events or scopes were changed since the
// delivery was made), is cancelled; pings are sent whatever the
// subscription's state. Store errors are returned for asynq to retry the
// task.
//
// A subscription has at most Config.WebhookPerSubscription deliveries in
// flight in this Server: a task beyond them returns errSubscriptionBusy
// and is put back for about a second, no attempt made or counted.
func (h *WebhookHandlers) HandleWebhookDeliverTask(ctx context.Context, t *asynq.Task) error {
	var p WebhookDeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("webhook delivery: %w: %v: %w", errInvalidPayload, err, asynq.SkipRetry)
	}
	if !store.ValidID(p.WorkspaceID) || !store.ValidID(p.DeliveryID) || p.Attempt < 0 ||
		(p.WebhookID != "" && !store.ValidID(p.WebhookID)) {
		return fmt.Errorf("webhook delivery: %w: workspace_id %q, delivery_id %q, webhook_id %q, attempt %d: %w",
			errInvalidPayload, p.WorkspaceID, p.DeliveryID, p.WebhookID, p.Attempt, asynq.SkipRetry)
	}
	if p.WebhookID != "" {
		if !h.slots.acquire(p.WebhookID) {
			return fmt.Errorf("webhook delivery %s to %s: %w", p.DeliveryID, p.WebhookID, errSubscriptionBusy)
		}
		defer h.slots.release(p.WebhookID)
	}
	d, w, err := h.svc.FindDelivery(ctx, p.WorkspaceID, p.DeliveryID)
	switch {
	case store.ErrorCode(err) == store.ENOTFOUND:
		return nil // deleted with its subscription, or by retention
	case err != nil:
		return fmt.Errorf("webhook delivery %s: %w", p.DeliveryID, err)
	}
	if d.Status != store.DeliveryPending || d.Attempts != p.Attempt {
		return nil // finished, or a stale duplicate of an attempt already made
	}
	if p.WebhookID == "" { // a task made before payloads named the subscription
		if !h.slots.acquire(d.WebhookID) {
			return fmt.Errorf("webhook delivery %s to %s: %w", d.ID, d.WebhookID, errSubscriptionBusy)
		}
		defer h.slots.release(d.WebhookID)
	}
	prev := d.Attempts
	// Once the attempt is made, record it even if the task is being
	// cancelled: a requeued task then finds it made and does nothing.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if reason := cancelReason(d, w); reason != "" {
		h.log.Info("webhook delivery cancelled", "delivery_id", d.ID, "webhook_id", d.WebhookID,
			"workspace_id", d.WorkspaceID, "event_type", d.EventType, "reason", reason)
		d.Status, d.NextAttemptAt = store.DeliveryCancelled, nil
		return h.save(sctx, d, prev)
	}

	at := h.svc.Now()
	res := h.post(ctx, d, w)
	if res.aborted {
		return fmt.Errorf("webhook delivery %s: %w", d.ID, context.Cause(ctx))
	}
	d.Attempts++
	d.History = append(d.History, store.Attempt{At: at, StatusCode: res.code, LatencyMS: res.latency.Milliseconds(), Error: res.err})
	d.Status, d.NextAttemptAt = store.DeliveryFailed, nil
	// Failure streaks and automatic disabling concern subscriptions that are
	// on; a ping to one that is off leaves its state alone.
	streak := w.Status == store.WebhookActive || w.Status == store.WebhookFailing
	switch res.kind {
	case attemptDelivered:
		d.Status = store.DeliveryDelivered
		if streak {
			if err := h.svc.WebhookSucceeded(sctx, w); err != nil {
				h.log.Warn("cannot end a webhook's failure streak", "webhook_id", w.ID, "err", err)
			}
		}
	case attemptGone:
		// Unsubscribe first: if that fails, the task is retried and the
		// receiver asked again.
		if err := h.svc.RemoveWebhook(sctx, w); err != nil {
			return fmt.Errorf("webhook delivery %s: remove the subscription its receiver answered 410 Gone to: %w", d.ID, err)
		}
		h.log.Info("webhook removed: its receiver answered 410 Gone", "webhook_id", w.ID, "workspace_id", w.WorkspaceID)
	default:
		disabled := false
		if streak {
			var err error
			disabled, err = h.svc.WebhookFailed(sctx, w, h.cfg.WebhookDisableAfter, h.disableReason(w, res))
			switch {
			case err != nil:
				h.log.Warn("cannot record a webhook's failure", "webhook_id", w.ID, "err", err)
			case disabled:
				h.log.Warn("webhook disabled: its deliveries have failed for too long", "webhook_id", w.ID,
					"workspace_id", w.WorkspaceID, "failing_since", w.FailingSince, "disable_after", h.cfg.WebhookDisableAfter,
					"last_error", res.err)
			}
		}
		if next, ok := h.nextAttempt(d.Attempts, res.retryAfter, h.svc.Now()); ok && res.kind == attemptRetry && !disabled {
			d.Status, d.NextAttemptAt = store.DeliveryPending, &next
		}
	}
	if err := h.save(sctx, d, prev); err != nil || d.Status != store.DeliveryPending {
		return err
	}
	if _, err := enqueueDelivery(sctx, h.client, h.cfg.Queues.Webhooks, d); err != nil {
		// The sweep dispatches it once it is overdue.
		h.redis.failed(h.log, "cannot schedule webhook retries; the sweep sends them once Redis answers", err)
	} else {
		h.redis.ok(h.log, "webhook retries are scheduled again")
	}
	return nil
}

// cancelReason says why delivery d to subscription w (nil when deleted) is
// not to be made, or "" when it is. A ping is made whatever the state of
// its subscription.
func cancelReason(d *store.Delivery, w *store.Webhook) string {
	switch {
	case w == nil:
		return "the subscription was deleted"
	case d.EventType == store.EventPing:
		return ""
	case w.Status == store.WebhookDisabled:
		return "the subscription is disabled"
	case w.Status == store.WebhookExpired:
		return "the subscription has expired"
	case !w.Receives(d.EventType):
		return "the subscription no longer receives " + d.EventType + " events: its events or scopes changed after the event"
	}
	return ""
}

// save stores d, read with prev attempts. A delivery changed by another
// worker meanwhile, or deleted, is no error.
func (h *WebhookHandlers) save(ctx context.Context, d *store.Delivery, prev int) error {
	err := h.svc.UpdateDelivery(ctx, d, prev)
	if err == nil || errors.Is(err, store.ErrStale) || store.ErrorCode(err) == store.ENOTFOUND {
		return nil
	}
	return fmt.Errorf("webhook delivery %s: save: %w", d.ID, err)
}

func (h *WebhookHandlers) disableReason(w *store.Webhook, res attemptResult) string {
	since := "its last success"
	if w.FailingSince != nil {
		since = w.FailingSince.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("Disabled by the worker: deliveries have failed since %s, longer than %s, without a success; "+
		"the last attempt: %s. Fix the receiver, then enable the subscription again (PATCH \"enabled\": true).",
		since, formatDuration(h.cfg.WebhookDisableAfter), res.err)
}

// formatDuration writes d as "72h" or "1h30m" rather than "72h0m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// nextAttempt returns when to make the attempt after the given number of
// attempts: the schedule's wait with ±20% jitter, or longer if the receiver
// asked for it with Retry-After. ok is false when the schedule is used up.
func (h *WebhookHandlers) nextAttempt(attempts int, retryAfter time.Duration, now time.Time) (time.Time, bool) {
	sched := h.cfg.WebhookRetrySchedule
	if attempts < 1 || attempts > len(sched) {
		return time.Time{}, false
	}
	wait := sched[attempts-1]
	next := now.Add(time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())))
	if retryAfter > 0 {
		// asynq schedules by whole seconds, rounded down: round up, so
		// that the wait is at least what was asked.
		asked := now.Add(min(retryAfter, MaxRetryAfter))
		if t := asked.Truncate(time.Second); !t.Equal(asked) {
			asked = t.Add(time.Second)
		}
		if asked.After(next) {
			next = asked
		}
	}
	return next, true
}

// post makes one attempt: the delivery's payload, signed with a timestamp
// of now, POSTed to the subscription's URL within WebhookTimeout.
func (h *WebhookHandlers) post(ctx context.Context, d *store.Delivery, w *store.Webhook) attemptResult {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return attemptResult{kind: attemptFinal, err: "the subscription's URL is not a valid http(s) URL"}
	}
	if u.Scheme != "https" && !h.svc.TargetPolicy().AllowInsecure {
		return attemptResult{kind: attemptFinal, err: "url: must use https; http is only allowed with HUSTACK_WEBHOOK_ALLOW_INSECURE"}
	}
	signedAt := time.Now()
	sig, err := Sign(w.Secret, d.EventID, signedAt, d.Payload)
	if err != nil {
		return attemptResult{kind: attemptFinal, err: "the subscription's signing secret is unusable"}
	}
	rctx, cancel := context.WithTimeout(ctx, h.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return attemptResult{kind: attemptFinal, err: "the subscription's URL is not a valid http(s) URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhookUA)
	req.Header.Set(HeaderWebhookID, d.EventID)
	req.Header.Set(HeaderWebhookTimestamp, strconv.FormatInt(signedAt.Unix(), 10))
	req.Header.Set(HeaderWebhookSignature, sig)
	start := time.Now()
	resp, err := h.http.Do(req)
	if err != nil {
		var refused *refusedError
		switch {
		case ctx.Err() != nil:
			return attemptResult{aborted: true}
		case errors.As(err, &refused):
			return attemptResult{kind: attemptFinal, latency: time.Since(start), err: truncate(refused.Error(), maxAttemptError)}
		}
		return attemptResult{kind: attemptRetry, latency: time.Since(start), err: h.describe(err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	resp.Body.Close()
	res := attemptResult{code: resp.StatusCode, latency: time.Since(start)}
	status := strconv.Itoa(resp.StatusCode)
	if text := http.StatusText(resp.StatusCode); text != "" {
		status += " " + text
	}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		res.kind = attemptDelivered
	case c == http.StatusGone:
		res.kind, res.err = attemptGone, "HTTP 410 Gone: the receiver unsubscribed, so the subscription was deleted"
	case c >= 300 && c < 400:
		res.kind, res.err = attemptRetry, fmt.Sprintf("HTTP %s: redirects are not followed (Location: %s)", status, resp.Header.Get("Location"))
	case c == http.StatusRequestTimeout, c == http.StatusConflict, c == http.StatusTooEarly, c == http.StatusTooManyRequests, c >= 500:
		res.kind, res.err = attemptRetry, "HTTP "+status
		if c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable {
			res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		}
	case c >= 400:
		res.kind, res.err = attemptFinal, "HTTP "+status+": not retried"
	default:
		res.kind, res.err = attemptRetry, "unexpected HTTP "+status
	}
	res.err = truncate(res.err, maxAttemptError)
	return res
}

// describe turns a failed request into a short reason, without the URL
// (which may hold a token) and without any secret.
func (h *WebhookHandlers) describe(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	var serr *store.Error
	var nerr net.Error
	switch {
	case errors.As(err, &serr):
		return truncate(serr.Message, maxAttemptError)
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &nerr) && nerr.Timeout()):
		return fmt.Sprintf("timed out: no complete answer within %v", h.cfg.WebhookTimeout)
	}
	return truncate(err.Error(), maxAttemptError)
}

// parseRetryAfter reads a Retry-After header: seconds, or an HTTP date. It
// returns 0 when there is none or it cannot be read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), MaxRetryAfter)
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// HandleWebhookSweepTask dispatches again the pending deliveries whose
// attempt is more than WebhookSweepGrace overdue: their task was lost
// (Redis lost its data, or a dispatch failed) or archived. An attempt still
// queued is left alone. It then disables the subscriptions that have
// failed without a success for longer than WebhookDisableAfter, which
// their own attempts may not notice: a delivery's schedule can end before
// then, jitter included.
func (h *WebhookHandlers) HandleWebhookSweepTask(ctx context.Context, t *asynq.Task) error {
	ds, err := h.svc.DueDeliveries(ctx, h.svc.Now().Add(-h.cfg.WebhookSweepGrace), sweepLimit)
	if err != nil {
		return fmt.Errorf("webhook sweep: %w", err)
	}
	n := 0
	for _, d := range ds {
		ok, err := h.redispatch(ctx, d)
		if err != nil {
			return fmt.Errorf("webhook sweep: %d dispatched before: %w", n, err)
		}
		if ok {
			n++
		}
	}
	if n > 0 {
		h.log.Info("overdue webhook deliveries dispatched again", "dispatched", n, "overdue", len(ds))
	}
	disabled, err := h.svc.DisableFailingWebhooks(ctx, h.cfg.WebhookDisableAfter)
	if disabled > 0 {
		h.log.Warn("webhooks disabled: their deliveries have failed for too long", "disabled", disabled,
			"disable_after", h.cfg.WebhookDisableAfter)
	}
	if err != nil {
		return fmt.Errorf("webhook sweep: disable failing subscriptions (%d disabled before): %w", disabled, err)
	}
	if w := t.ResultWriter(); w != nil {
		_, _ = fmt.Fprintf(w, `{"overdue":%d,"dispatched":%d,"disabled":%d}`, len(ds), n, disabled)
	}
	return nil
}

// redispatch enqueues d's attempt unless it is queued or running; an
// archived task of the attempt (its retries used up by store errors) is
// replaced. It reports whether it enqueued.
func (h *WebhookHandlers) redispatch(ctx context.Context, d *store.Delivery) (bool, error) {
	queue := h.cfg.Queues.Webhooks
	task, opts, err := deliveryTask(d, queue)
	if err != nil {
		return false, err
	}
	return h.unique.enqueue(ctx, task, queue, DeliveryTaskID(d.ID, d.Attempts), opts...)
}

// HandleWebhookRetentionTask deletes finished deliveries older than the
// payload's retention, counted back from now.
func (h *WebhookHandlers) HandleWebhookRetentionTask(ctx context.Context, t *asynq.Task) error {
	var p WebhookRetentionPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("delivery retention: %w: %v: %w", errInvalidPayload, err, asynq.SkipRetry)
	}
	if p.RetentionSeconds < 1 {
		return fmt.Errorf("delivery retention: %w: retention_seconds %d: %w", errInvalidPayload, p.RetentionSeconds, asynq.SkipRetry)
	}
	before := h.svc.Now().Add(-time.Duration(p.RetentionSeconds) * time.Second)
	n, err := h.svc.DeleteDeliveriesBefore(ctx, before)
	if err != nil {
		return fmt.Errorf("delivery retention: delete before %s: %w", before.Format(time.RFC3339), err)
	}
	if n > 0 {
		h.log.Info("webhook deliveries past retention deleted", "deleted", n, "before", before)
	}
	if w := t.ResultWriter(); w != nil {
		_, _ = fmt.Fprintf(w, `{"deleted":%d,"before":%q}`, n, before.Format(time.RFC3339))
	}
	return nil
}

// HandleAnnounceExpiringKeysTask stores an api_key.expiring event for each
// key about to expire that was not announced yet.
func (h *WebhookHandlers) HandleAnnounceExpiringKeysTask(ctx context.Context, t *asynq.Task) error {
	n, err := h.svc.AnnounceExpiringKeys(ctx)
	if n > 0 {
		h.log.Info("expiring API keys announced", "announced", n)
	}
	if err != nil {
		return fmt.Errorf("announce expiring keys: %d announced before: %w", n, err)
	}
	if w := t.ResultWriter(); w != nil {
		_, _ = fmt.Fprintf(w, `{"announced":%d}`, n)
	}
	return nil
}
