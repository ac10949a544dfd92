package mongo

import (
	"context"
	"errors"
	"time"

	"github.com/hustack/hustack/store"
)

var errWebhooksTODO = errors.New("mongo: webhooks are not implemented yet")

func (db *DB) CreateWebhook(ctx context.Context, w *store.Webhook) error { return errWebhooksTODO }
func (db *DB) FindWebhookByID(ctx context.Context, workspaceID, id string) (*store.Webhook, error) {
	return nil, errWebhooksTODO
}
func (db *DB) FindWebhooks(ctx context.Context, workspaceID string) ([]*store.Webhook, error) {
	return nil, nil
}
func (db *DB) UpdateWebhook(ctx context.Context, w *store.Webhook) error { return errWebhooksTODO }
func (db *DB) DeleteWebhook(ctx context.Context, workspaceID, id string) error {
	return errWebhooksTODO
}
func (db *DB) SetWebhookFailing(ctx context.Context, workspaceID, id string, at *time.Time) error {
	return errWebhooksTODO
}
func (db *DB) DisableWebhook(ctx context.Context, workspaceID, id, reason string, at time.Time) error {
	return errWebhooksTODO
}
func (db *DB) ClaimEvents(ctx context.Context, now, staleBefore time.Time, limit int) ([]store.Event, error) {
	return nil, nil
}
func (db *DB) DeleteEvents(ctx context.Context, ids []string) error { return nil }
func (db *DB) MarkAPIKeyExpiring(ctx context.Context, workspaceID, id string, at time.Time) (bool, error) {
	return false, nil
}
func (db *DB) InsertDeliveries(ctx context.Context, ds []*store.Delivery) error {
	return errWebhooksTODO
}
func (db *DB) FindDeliveryByID(ctx context.Context, workspaceID, id string) (*store.Delivery, error) {
	return nil, errWebhooksTODO
}
func (db *DB) FindDeliveries(ctx context.Context, workspaceID, webhookID string, q store.DeliveryQuery) ([]*store.Delivery, error) {
	return nil, errWebhooksTODO
}
func (db *DB) UpdateDelivery(ctx context.Context, d *store.Delivery, prevAttempts int) error {
	return errWebhooksTODO
}
func (db *DB) FindDueDeliveriesUnscoped(ctx context.Context, before time.Time, limit int) ([]*store.Delivery, error) {
	return nil, nil
}
func (db *DB) DeleteDeliveriesBefore(ctx context.Context, before time.Time) (int64, error) {
	return 0, nil
}
