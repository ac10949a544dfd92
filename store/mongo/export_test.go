package mongo

import (
	"context"

	"github.com/hustack/hustack/store"
)

// IsUniqueViolation exposes isUniqueViolation to the tests of package mongo_test.
var IsUniqueViolation = isUniqueViolation

// SetOutboxHook makes d call hook between the steps of moving events to the
// outbox collection ("inserted", "pulled", "unmarked"); nil removes it.
func SetOutboxHook(d *DB, hook func(step string)) { d.outboxHook = hook }

// InsertRecordWithoutEvent stores rec as InsertRecord does but without its
// event: the baseline of BenchmarkInsertRecord.
func InsertRecordWithoutEvent(ctx context.Context, d *DB, rec *store.Record) error {
	doc, err := recordDoc(rec)
	if err != nil {
		return err
	}
	_, err = d.records(rec.Resource).InsertOne(ctx, doc)
	return err
}
