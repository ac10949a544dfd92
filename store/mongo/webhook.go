package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/hustack/hustack/store"
)

// webhookDoc is a stored subscription.
type webhookDoc struct {
	ID             string            `bson:"_id"`
	WorkspaceID    string            `bson:"workspace_id"`
	URL            string            `bson:"url"`
	Events         []string          `bson:"events"`
	Description    string            `bson:"description"`
	Enabled        bool              `bson:"enabled"`
	DisabledReason string            `bson:"disabled_reason"`
	FailingSince   *time.Time        `bson:"failing_since,omitempty"`
	ExpiresAt      *time.Time        `bson:"expires_at,omitempty"`
	Scopes         []string          `bson:"scopes"`
	Filter         map[string]string `bson:"filter,omitempty"`
	APIKeyID       string            `bson:"api_key_id"`
	Secret         string            `bson:"secret"`
	CreatedAt      time.Time         `bson:"created_at"`
	UpdatedAt      time.Time         `bson:"updated_at"`
}

func scopeStrings(scopes []store.Scope) []string {
	out := make([]string, len(scopes))
	for i, s := range scopes {
		out[i] = string(s)
	}
	return out
}

func newWebhookDoc(w *store.Webhook) webhookDoc {
	return webhookDoc{
		ID: w.ID, WorkspaceID: w.WorkspaceID, URL: w.URL, Events: w.Events, Description: w.Description,
		Enabled: w.Enabled, DisabledReason: w.DisabledReason, FailingSince: w.FailingSince, ExpiresAt: w.ExpiresAt,
		Scopes: scopeStrings(w.Scopes), Filter: w.Filter, APIKeyID: w.APIKeyID, Secret: w.Secret,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt,
	}
}

func (doc webhookDoc) webhook() *store.Webhook {
	scopes := make([]store.Scope, len(doc.Scopes))
	for i, s := range doc.Scopes {
		scopes[i] = store.Scope(s)
	}
	var filter map[string]string
	if len(doc.Filter) > 0 {
		filter = doc.Filter
	}
	return &store.Webhook{
		ID: doc.ID, WorkspaceID: doc.WorkspaceID, URL: doc.URL, Events: doc.Events, Description: doc.Description,
		Enabled: doc.Enabled, DisabledReason: doc.DisabledReason, FailingSince: utcPtr(doc.FailingSince),
		ExpiresAt: utcPtr(doc.ExpiresAt), Scopes: scopes, Filter: filter, APIKeyID: doc.APIKeyID, Secret: doc.Secret,
		CreatedAt: utc(doc.CreatedAt), UpdatedAt: utc(doc.UpdatedAt),
	}
}

func (d *DB) webhooks() *mongo.Collection { return d.db.Collection(webhooksColl) }

func webhookFilter(workspaceID, id string) bson.D {
	return bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}}
}

// setOrUnset adds t to set under key, or to unset when t is nil.
func setOrUnset(set, unset bson.D, key string, t *time.Time) (bson.D, bson.D) {
	if t == nil {
		return set, append(unset, bson.E{Key: key, Value: ""})
	}
	return append(set, bson.E{Key: key, Value: *t}), unset
}

// CreateWebhook stores a new subscription.
func (d *DB) CreateWebhook(ctx context.Context, w *store.Webhook) error {
	_, err := d.webhooks().InsertOne(ctx, newWebhookDoc(w))
	return translate(err, "insert webhook", "webhook")
}

// FindWebhookByID returns a subscription of the workspace.
func (d *DB) FindWebhookByID(ctx context.Context, workspaceID, id string) (*store.Webhook, error) {
	var doc webhookDoc
	if err := d.webhooks().FindOne(ctx, webhookFilter(workspaceID, id)).Decode(&doc); err != nil {
		return nil, translate(err, "find webhook", "webhook")
	}
	return doc.webhook(), nil
}

// FindWebhooks returns the workspace's subscriptions, oldest first.
func (d *DB) FindWebhooks(ctx context.Context, workspaceID string) ([]*store.Webhook, error) {
	sort := bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}
	cur, err := d.webhooks().Find(ctx, bson.D{{Key: "workspace_id", Value: workspaceID}}, findOptions(sort, 0, 0))
	if err != nil {
		return nil, translate(err, "find webhooks", "webhook")
	}
	var docs []webhookDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read webhooks", "webhook")
	}
	out := make([]*store.Webhook, len(docs))
	for i, doc := range docs {
		out[i] = doc.webhook()
	}
	return out, nil
}

// UpdateWebhook replaces what a subscription's owner and the worker may
// change, provided it is unchanged since prevUpdatedAt; the secret, filter,
// key and creation time stay.
func (d *DB) UpdateWebhook(ctx context.Context, w *store.Webhook, prevUpdatedAt time.Time) error {
	events := w.Events
	if events == nil {
		events = []string{}
	}
	set := bson.D{
		{Key: "url", Value: w.URL},
		{Key: "events", Value: events},
		{Key: "description", Value: w.Description},
		{Key: "enabled", Value: w.Enabled},
		{Key: "disabled_reason", Value: w.DisabledReason},
		{Key: "scopes", Value: scopeStrings(w.Scopes)},
		{Key: "updated_at", Value: w.UpdatedAt},
	}
	var unset bson.D
	set, unset = setOrUnset(set, unset, "expires_at", w.ExpiresAt)
	build := func(clearFailing bool) bson.D {
		u := slices.Clone(unset)
		if clearFailing {
			u = append(u, bson.E{Key: "failing_since", Value: ""})
		}
		update := bson.D{{Key: "$set", Value: set}}
		if len(u) > 0 {
			update = append(update, bson.E{Key: "$unset", Value: u})
		}
		return update
	}
	filter := append(webhookFilter(w.WorkspaceID, w.ID), bson.E{Key: "updated_at", Value: prevUpdatedAt})
	// failing_since is the worker's: cleared only when this update turns a
	// disabled subscription on.
	if w.Enabled {
		res, err := d.webhooks().UpdateOne(ctx, append(slices.Clone(filter), bson.E{Key: "enabled", Value: false}), build(true))
		if err != nil {
			return translate(err, "update webhook", "webhook")
		}
		if res.MatchedCount > 0 {
			return nil
		}
	}
	res, err := d.webhooks().UpdateOne(ctx, filter, build(false))
	if err != nil {
		return translate(err, "update webhook", "webhook")
	}
	if res.MatchedCount > 0 {
		return nil
	}
	// Nothing matched: no such subscription (not_found), or changed since
	// it was read (stale).
	err = d.webhooks().FindOne(ctx, webhookFilter(w.WorkspaceID, w.ID),
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err != nil {
		return translate(err, "update webhook", "webhook")
	}
	return store.ErrStale
}

// DeleteWebhook removes a subscription and its deliveries; not_found when
// the workspace has no such subscription. The deliveries are removed after
// the subscription (a delivery without one is cancelled by the worker) and
// also when it is already gone, so that deleting again after a failure
// leaves nothing behind.
func (d *DB) DeleteWebhook(ctx context.Context, workspaceID, id string) error {
	res, err := d.webhooks().DeleteOne(ctx, webhookFilter(workspaceID, id))
	if err != nil {
		return translate(err, "delete webhook", "webhook")
	}
	_, err = d.deliveries().DeleteMany(ctx, bson.D{{Key: "workspace_id", Value: workspaceID}, {Key: "webhook_id", Value: id}})
	if err != nil {
		return translate(err, "delete deliveries", "delivery")
	}
	if res.DeletedCount == 0 {
		return store.Errorf(store.ENOTFOUND, "Webhook not found.")
	}
	return nil
}

// SetWebhookFailing sets failing_since unless it is set (at == nil clears
// it), changing nothing else. Unknown ids are no error.
func (d *DB) SetWebhookFailing(ctx context.Context, workspaceID, id string, at *time.Time) error {
	filter := webhookFilter(workspaceID, id)
	var update bson.D
	if at == nil {
		update = bson.D{{Key: "$unset", Value: bson.D{{Key: "failing_since", Value: ""}}}}
	} else {
		filter = append(filter, bson.E{Key: "failing_since", Value: nil})
		update = bson.D{{Key: "$set", Value: bson.D{{Key: "failing_since", Value: *at}}}}
	}
	_, err := d.webhooks().UpdateOne(ctx, filter, update)
	return translate(err, "set webhook failing", "webhook")
}

// DisableWebhook turns an enabled subscription off with a reason; with
// failingSince, only while its failure streak is still that one. Unknown ids
// are no error.
func (d *DB) DisableWebhook(ctx context.Context, workspaceID, id, reason string, at time.Time, failingSince *time.Time) (bool, error) {
	update := bson.D{{Key: "$set", Value: bson.D{
		{Key: "enabled", Value: false},
		{Key: "disabled_reason", Value: reason},
		{Key: "updated_at", Value: at},
	}}}
	filter := append(webhookFilter(workspaceID, id), bson.E{Key: "enabled", Value: true})
	if failingSince != nil {
		filter = append(filter, bson.E{Key: "failing_since", Value: *failingSince})
	}
	res, err := d.webhooks().UpdateOne(ctx, filter, update)
	if err != nil {
		return false, translate(err, "disable webhook", "webhook")
	}
	return res.ModifiedCount > 0, nil
}

// deliveryDoc is a stored delivery. NextAttemptAt is absent once the
// delivery is finished, so the sparse index on it holds pending ones only.
type deliveryDoc struct {
	ID            string       `bson:"_id"`
	WorkspaceID   string       `bson:"workspace_id"`
	WebhookID     string       `bson:"webhook_id"`
	EventID       string       `bson:"event_id"`
	EventType     string       `bson:"event_type"`
	Payload       string       `bson:"payload"`
	Status        string       `bson:"status"`
	Attempts      int          `bson:"attempts"`
	History       []attemptDoc `bson:"history"`
	NextAttemptAt *time.Time   `bson:"next_attempt_at,omitempty"`
	ReplayOf      string       `bson:"replay_of"`
	CreatedAt     time.Time    `bson:"created_at"`
	UpdatedAt     time.Time    `bson:"updated_at"`
}

type attemptDoc struct {
	At         time.Time `bson:"at"`
	StatusCode int       `bson:"status_code"`
	LatencyMS  int64     `bson:"latency_ms"`
	Error      string    `bson:"error"`
}

func attemptDocs(as []store.Attempt) []attemptDoc {
	out := make([]attemptDoc, len(as))
	for i, a := range as {
		out[i] = attemptDoc{At: a.At, StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error}
	}
	return out
}

func newDeliveryDoc(dl *store.Delivery) deliveryDoc {
	return deliveryDoc{
		ID: dl.ID, WorkspaceID: dl.WorkspaceID, WebhookID: dl.WebhookID, EventID: dl.EventID, EventType: dl.EventType,
		Payload: string(dl.Payload), Status: dl.Status, Attempts: dl.Attempts, History: attemptDocs(dl.History),
		NextAttemptAt: dl.NextAttemptAt, ReplayOf: dl.ReplayOf, CreatedAt: dl.CreatedAt, UpdatedAt: dl.UpdatedAt,
	}
}

func (doc deliveryDoc) delivery() *store.Delivery {
	history := make([]store.Attempt, len(doc.History))
	for i, a := range doc.History {
		history[i] = store.Attempt{At: utc(a.At), StatusCode: a.StatusCode, LatencyMS: a.LatencyMS, Error: a.Error}
	}
	return &store.Delivery{
		ID: doc.ID, WorkspaceID: doc.WorkspaceID, WebhookID: doc.WebhookID, EventID: doc.EventID,
		EventType: doc.EventType, Payload: []byte(doc.Payload), Status: doc.Status, Attempts: doc.Attempts,
		History: history, NextAttemptAt: utcPtr(doc.NextAttemptAt), ReplayOf: doc.ReplayOf,
		CreatedAt: utc(doc.CreatedAt), UpdatedAt: utc(doc.UpdatedAt),
	}
}

func (d *DB) deliveries() *mongo.Collection { return d.db.Collection(deliveriesColl) }

// InsertDeliveries stores new deliveries in one unordered bulk insert; one
// whose id is already stored is skipped.
func (d *DB) InsertDeliveries(ctx context.Context, ds []*store.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	docs := make([]deliveryDoc, len(ds))
	for i, dl := range ds {
		docs[i] = newDeliveryDoc(dl)
	}
	_, err := d.deliveries().InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil || onlyDuplicates(err) {
		return nil
	}
	return fmt.Errorf("mongo: insert deliveries: %w", err)
}

// FindDeliveryByID returns a delivery of the workspace.
func (d *DB) FindDeliveryByID(ctx context.Context, workspaceID, id string) (*store.Delivery, error) {
	var doc deliveryDoc
	filter := bson.D{{Key: "_id", Value: id}, {Key: "workspace_id", Value: workspaceID}}
	if err := d.deliveries().FindOne(ctx, filter).Decode(&doc); err != nil {
		return nil, translate(err, "find delivery", "delivery")
	}
	return doc.delivery(), nil
}

// findDeliveries runs a delivery query.
func (d *DB) findDeliveries(ctx context.Context, filter bson.D, opts *options.FindOptionsBuilder) ([]*store.Delivery, error) {
	cur, err := d.deliveries().Find(ctx, filter, opts)
	if err != nil {
		return nil, translate(err, "find deliveries", "delivery")
	}
	var docs []deliveryDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate(err, "read deliveries", "delivery")
	}
	out := make([]*store.Delivery, len(docs))
	for i, doc := range docs {
		out[i] = doc.delivery()
	}
	return out, nil
}

// FindDeliveries returns a subscription's deliveries matching q, newest
// first.
func (d *DB) FindDeliveries(ctx context.Context, workspaceID, webhookID string, q store.DeliveryQuery) ([]*store.Delivery, error) {
	filter := bson.D{{Key: "workspace_id", Value: workspaceID}, {Key: "webhook_id", Value: webhookID}}
	if q.Status != "" {
		filter = append(filter, bson.E{Key: "status", Value: q.Status})
	}
	sort := bson.D{{Key: "created_at", Value: -1}, {Key: "_id", Value: -1}}
	return d.findDeliveries(ctx, filter, findOptions(sort, q.Offset, q.Limit))
}

// UpdateDelivery stores a delivery's new state, provided the stored one
// still has prevAttempts attempts: the condition is part of the update's
// filter. Else ErrStale, or not_found when there is no such delivery.
func (d *DB) UpdateDelivery(ctx context.Context, dl *store.Delivery, prevAttempts int) error {
	key := bson.D{{Key: "_id", Value: dl.ID}, {Key: "workspace_id", Value: dl.WorkspaceID}}
	set := bson.D{
		{Key: "status", Value: dl.Status},
		{Key: "attempts", Value: dl.Attempts},
		{Key: "history", Value: attemptDocs(dl.History)},
		{Key: "updated_at", Value: dl.UpdatedAt},
	}
	set, unset := setOrUnset(set, nil, "next_attempt_at", dl.NextAttemptAt)
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	res, err := d.deliveries().UpdateOne(ctx, append(key, bson.E{Key: "attempts", Value: prevAttempts}), update)
	if err != nil {
		return translate(err, "update delivery", "delivery")
	}
	if res.MatchedCount > 0 {
		return nil
	}
	err = d.deliveries().FindOne(ctx, key, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.Errorf(store.ENOTFOUND, "Delivery not found.")
	}
	if err != nil {
		return translate(err, "find delivery", "delivery")
	}
	return store.ErrStale
}

// FindDueDeliveriesUnscoped returns pending deliveries of any workspace
// whose next attempt was due before the given time, oldest due first.
func (d *DB) FindDueDeliveriesUnscoped(ctx context.Context, before time.Time, limit int) ([]*store.Delivery, error) {
	filter := bson.D{
		{Key: "next_attempt_at", Value: bson.D{{Key: "$lt", Value: before}}},
		{Key: "status", Value: store.DeliveryPending},
	}
	sort := bson.D{{Key: "next_attempt_at", Value: 1}, {Key: "_id", Value: 1}}
	return d.findDeliveries(ctx, filter, findOptions(sort, 0, limit))
}

// DeleteDeliveriesBefore deletes finished deliveries created before the
// given time, in all workspaces.
func (d *DB) DeleteDeliveriesBefore(ctx context.Context, before time.Time) (int64, error) {
	filter := bson.D{
		{Key: "created_at", Value: bson.D{{Key: "$lt", Value: before}}},
		{Key: "status", Value: bson.D{{Key: "$ne", Value: store.DeliveryPending}}},
	}
	res, err := d.deliveries().DeleteMany(ctx, filter)
	if err != nil {
		return 0, translate(err, "delete deliveries", "delivery")
	}
	return res.DeletedCount, nil
}
