package mongo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo"
	"github.com/hustack/hustack/store/mongo/mongotest"
)

// BenchmarkInsertRecord measures a record create with its event stored in
// the same document (event) against the same insert without it (no_event).
// Run it against a real MongoDB (MONGODB_URI): FerretDB's figures say
// little about MongoDB's.
func BenchmarkInsertRecord(b *testing.B) {
	for _, withEvent := range []bool{false, true} {
		name := "no_event"
		if withEvent {
			name = "event"
		}
		b.Run(name, func(b *testing.B) {
			db := mongotest.Open(b)
			ctx := context.Background()
			ws := store.NewID()
			now := time.Now().UTC().Truncate(time.Millisecond)
			i := 0
			for b.Loop() {
				i++
				rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: ws,
					Fields: map[string]any{"name": fmt.Sprintf("Account %d", i), "industry": "Software",
						"website": "https://example.test", "country": "FR"},
					CreatedAt: now, UpdatedAt: now, CreatedVia: store.CreatedViaAPI, APIKeyID: ws}
				var err error
				if withEvent {
					err = db.InsertRecord(ctx, rec)
				} else {
					err = mongo.InsertRecordWithoutEvent(ctx, db, rec)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
