package mongo_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo"
	"github.com/hustack/hustack/store/mongo/mongotest"
)

// claim claims every claimable event (at most 1000) and returns them.
func claim(t *testing.T, db *mongo.DB) []store.Event {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	evs, err := db.ClaimEvents(context.Background(), now, now.Add(-time.Minute), 1000)
	if err != nil {
		t.Fatalf("ClaimEvents: %v", err)
	}
	return evs
}

func eventTypes(evs []store.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = ev.Type
	}
	return out
}

// pendingCount counts the documents of a collection still marked as having
// events to move.
func pendingCount(t *testing.T, db *mongo.DB, coll string) int64 {
	t.Helper()
	n, err := db.Database().Collection(coll).CountDocuments(context.Background(),
		bson.D{{Key: "_outbox_pending", Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOutboxMoveKeepsEventsWrittenMeanwhile writes to a record between the
// steps of moving its events to the outbox collection: the event written
// meanwhile is neither lost nor moved with the others, and the next move
// takes it and leaves the document without outbox fields.
func TestOutboxMoveKeepsEventsWrittenMeanwhile(t *testing.T) {
	for _, step := range []string{"inserted", "pulled", "unmarked"} {
		t.Run("after "+step, func(t *testing.T) {
			db := mongotest.Open(t)
			ctx := context.Background()
			w := newWorkspace(t, db, "acme")
			rec := newAccount(t, db, w.ID, map[string]any{"name": "Acme"}, base)

			upd := *rec
			upd.Fields = map[string]any{"name": "Acme Updated"}
			upd.UpdatedAt = base.Add(time.Second)
			var hookErr error
			ran := 0
			mongo.SetOutboxHook(db, func(s string) {
				if s == step && ran == 0 {
					ran++
					hookErr = db.UpdateRecord(ctx, &upd, rec.UpdatedAt)
				}
			})
			first := claim(t, db)
			mongo.SetOutboxHook(db, nil)
			if hookErr != nil || ran != 1 {
				t.Fatalf("update during the move: ran %d times, %v", ran, hookErr)
			}
			if got := eventTypes(first); !slices.Equal(got, []string{"account.created"}) {
				t.Fatalf("first claim = %v, want only the event stored before the move", got)
			}
			raw := rawRecord(t, db, store.Accounts, rec.ID)
			if entries, _ := raw["_outbox"].(bson.A); raw["_outbox_pending"] != true || len(entries) != 1 {
				t.Fatalf("record after the move = %v, want one waiting event and the marker", raw)
			}

			second := claim(t, db)
			if got := eventTypes(second); !slices.Equal(got, []string{"account.updated"}) {
				t.Fatalf("second claim = %v, want the update written during the first move", got)
			}
			if !strings.Contains(string(second[0].Data), `"name":"Acme Updated"`) {
				t.Errorf("updated event data = %s, want the updated name", second[0].Data)
			}
			raw = rawRecord(t, db, store.Accounts, rec.ID)
			if _, ok := raw["_outbox"]; ok {
				t.Errorf("record after the second move still has _outbox: %v", raw)
			}
			if _, ok := raw["_outbox_pending"]; ok {
				t.Errorf("record after the second move still has _outbox_pending: %v", raw)
			}
			if third := claim(t, db); len(third) != 0 {
				t.Errorf("third claim = %v, want nothing", eventTypes(third))
			}
		})
	}
}

// TestOutboxMoveResumesAfterFailure stops a move after its first step (the
// events are in the outbox collection but still in their documents): the
// next move inserts them again, which is ignored, and finishes the move;
// each event is claimed once.
func TestOutboxMoveResumesAfterFailure(t *testing.T) {
	db := mongotest.Open(t)
	w := newWorkspace(t, db, "acme")
	newAccount(t, db, w.ID, map[string]any{"name": "Acme"}, base)
	newKey(t, db, w.ID)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mongo.SetOutboxHook(db, func(s string) {
		if s == "inserted" {
			cancel()
		}
	})
	now := time.Now().UTC()
	_, err := db.ClaimEvents(ctx, now, now.Add(-time.Minute), 10)
	mongo.SetOutboxHook(db, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("ClaimEvents cancelled after the insert step = %v, want context.Canceled", err)
	}
	if n := pendingCount(t, db, "accounts"); n != 1 {
		t.Fatalf("accounts still marked after the failed move = %d, want 1", n)
	}

	got := eventTypes(claim(t, db))
	slices.Sort(got)
	if want := []string{"account.created", "api_key.created"}; !slices.Equal(got, want) {
		t.Errorf("claim after the failed move = %v, want %v once each", got, want)
	}
	for _, coll := range []string{"accounts", "api_keys"} {
		if n := pendingCount(t, db, coll); n != 0 {
			t.Errorf("%s still marked after the move = %d, want 0", coll, n)
		}
	}
}

// TestOutboxEventsAreTheWrites checks the events of every write against
// what the write stored, including the deleted event, whose data the
// tombstone gives when it is moved, and a revocation racing nothing but
// made after the key's last use was recorded.
func TestOutboxEventsAreTheWrites(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	rec := newAccount(t, db, w.ID, map[string]any{"name": "Acme", "external_id": "crm-1"}, base)
	upd := *rec
	upd.Fields = map[string]any{"name": "Acme 2", "external_id": "crm-1"}
	upd.UpdatedAt = base.Add(time.Second)
	if err := db.UpdateRecord(ctx, &upd, rec.UpdatedAt); err != nil {
		t.Fatal(err)
	}
	deletedAt := base.Add(2 * time.Second)
	if err := db.DeleteRecord(ctx, store.Accounts, w.ID, rec.ID, deletedAt); err != nil {
		t.Fatal(err)
	}
	k := newKey(t, db, w.ID)
	used := base.Add(3 * time.Second).UTC()
	if err := db.TouchAPIKeys(ctx, map[string]time.Time{k.ID: used}); err != nil {
		t.Fatal(err)
	}
	revokedAt := base.Add(4 * time.Second)
	if err := db.RevokeAPIKey(ctx, w.ID, k.ID, revokedAt); err != nil {
		t.Fatal(err)
	}
	if err := db.RevokeAPIKey(ctx, w.ID, k.ID, revokedAt.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	expiringAt := base.Add(5 * time.Second)
	for i, want := range []bool{true, false} {
		ok, err := db.MarkAPIKeyExpiring(ctx, w.ID, k.ID, expiringAt)
		if err != nil || ok != want {
			t.Fatalf("MarkAPIKeyExpiring #%d = %v, %v; want %v", i+1, ok, err, want)
		}
	}
	if ok, err := db.MarkAPIKeyExpiring(ctx, w.ID, store.NewID(), expiringAt); ok || err != nil {
		t.Errorf("MarkAPIKeyExpiring of an unknown key = %v, %v; want false, nil", ok, err)
	}
	if err := db.RevokeAPIKey(ctx, w.ID, store.NewID(), revokedAt); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("RevokeAPIKey of an unknown key = %v, want not_found", err)
	}

	tomb, err := db.FindRecords(ctx, store.Accounts, w.ID, store.RecordQuery{Limit: 1, IncludeDeleted: true})
	if err != nil || len(tomb) != 1 || tomb[0].DeletedAt == nil {
		t.Fatalf("tombstone = %v, %v", tomb, err)
	}
	key, err := db.FindAPIKeyByID(ctx, w.ID, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	keyCreated := *key
	keyCreated.RevokedAt, keyCreated.LastUsedAt = nil, nil
	wantData := func(ev store.Event, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return string(ev.Data)
	}
	storedRec := *rec
	storedRec.CreatedAt, storedRec.UpdatedAt = rec.CreatedAt.UTC(), rec.UpdatedAt.UTC()
	storedUpd := upd
	storedUpd.CreatedAt, storedUpd.UpdatedAt = upd.CreatedAt.UTC(), upd.UpdatedAt.UTC()
	want := []struct {
		typ  string
		at   time.Time
		data string
	}{
		{"account.created", base, wantData(store.NewRecordEvent(&storedRec, store.KindCreated))},
		{"account.updated", upd.UpdatedAt, wantData(store.NewRecordEvent(&storedUpd, store.KindUpdated))},
		{"account.deleted", deletedAt, wantData(store.NewRecordEvent(tomb[0], store.KindDeleted))},
		{"api_key.created", base, wantData(store.NewKeyEvent(&keyCreated, store.KindCreated, base))},
		{"api_key.revoked", revokedAt, wantData(store.NewKeyEvent(key, store.KindRevoked, revokedAt))},
		{"api_key.expiring", expiringAt, wantData(store.NewKeyEvent(key, store.KindExpiring, expiringAt))},
	}

	got := claim(t, db)
	if len(got) != len(want) {
		t.Fatalf("claimed %v, want %d events", eventTypes(got), len(want))
	}
	byType := map[string]store.Event{}
	for _, ev := range got {
		byType[ev.Type] = ev
	}
	for _, w2 := range want {
		ev, ok := byType[w2.typ]
		if !ok {
			t.Errorf("no %s event among %v", w2.typ, eventTypes(got))
			continue
		}
		if ev.WorkspaceID != w.ID || !ev.CreatedAt.Equal(w2.at) || ev.CreatedAt.Location() != time.UTC || !store.ValidID(ev.ID) {
			t.Errorf("%s event = %+v, want workspace %s, created_at %v in UTC and an id", w2.typ, ev, w.ID, w2.at)
		}
		if string(ev.Data) != w2.data {
			t.Errorf("%s data =\n%s\nwant\n%s", w2.typ, ev.Data, w2.data)
		}
	}
	if d := byType["account.deleted"].Data; !strings.Contains(string(d), `"deleted":true`) ||
		!strings.Contains(string(d), `"name":"Acme 2"`) {
		t.Errorf("deleted event data = %s, want the tombstone with its fields", d)
	}
	var revoked map[string]any
	if err := json.Unmarshal(byType["api_key.revoked"].Data, &revoked); err != nil || revoked["last_used_at"] == nil {
		t.Errorf("revoked event data = %s (%v), want the last use recorded before the revocation", byType["api_key.revoked"].Data, err)
	}
	for i := 1; i < len(got); i++ {
		if got[i].CreatedAt.Before(got[i-1].CreatedAt) {
			t.Errorf("claimed events not oldest first: %v", eventTypes(got))
		}
	}
	for _, coll := range []string{"accounts", "api_keys"} {
		if n := pendingCount(t, db, coll); n != 0 {
			t.Errorf("%s documents still marked after the move: %d", coll, n)
		}
	}

	// Claimed events are not claimed again until they are stale, and are
	// gone once deleted.
	if again := claim(t, db); len(again) != 0 {
		t.Errorf("claim again = %v, want nothing (claimed a moment ago)", eventTypes(again))
	}
	ids := make([]string, len(got))
	for i, ev := range got {
		ids[i] = ev.ID
	}
	if err := db.DeleteEvents(ctx, append(ids, store.NewID())); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if left, err := db.ClaimEvents(ctx, later, later, 10); err != nil || len(left) != 0 {
		t.Errorf("claim after DeleteEvents, everything stale = %v, %v; want nothing", eventTypes(left), err)
	}
}

// TestPurgeMovesEventsFirst purges a tombstone whose deleted event was not
// moved yet: the event, made from the tombstone, survives the purge.
func TestPurgeMovesEventsFirst(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	rec := newAccount(t, db, w.ID, map[string]any{"name": "Gone Inc"}, base)
	if err := db.DeleteRecord(ctx, store.Accounts, w.ID, rec.ID, base.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := db.PurgeTombstones(ctx, base.Add(time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PurgeTombstones = %d, %v; want 1", n, err)
	}
	got := claim(t, db)
	if types := eventTypes(got); !slices.Equal(types, []string{"account.created", "account.deleted"}) {
		t.Fatalf("claimed after the purge = %v, want the created and deleted events", types)
	}
	if d := string(got[1].Data); !strings.Contains(d, `"id":"`+rec.ID+`","deleted":true`) || !strings.Contains(d, `"name":"Gone Inc"`) {
		t.Errorf("deleted event data = %s, want the tombstone", d)
	}
}

// TestOutboxFieldsNeverShow reads records and keys whose events are still
// waiting in their documents, through every read: none shows the outbox
// fields.
func TestOutboxFieldsNeverShow(t *testing.T) {
	db := mongotest.Open(t)
	ctx := context.Background()
	w := newWorkspace(t, db, "acme")
	live := newAccount(t, db, w.ID, map[string]any{"name": "Live", "external_id": "ext-1"}, base)
	gone := newAccount(t, db, w.ID, map[string]any{"name": "Gone"}, base.Add(time.Second))
	if err := db.DeleteRecord(ctx, store.Accounts, w.ID, gone.ID, base.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	k := newKey(t, db, w.ID)
	if err := db.RevokeAPIKey(ctx, w.ID, k.ID, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{live.ID, gone.ID} {
		if raw := rawRecord(t, db, store.Accounts, id); raw["_outbox"] == nil || raw["_outbox_pending"] != true {
			t.Fatalf("stored record %s = %v, want waiting events (else this test proves nothing)", id, raw)
		}
	}

	noOutbox := func(what string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "_outbox") {
			t.Errorf("%s shows the outbox: %s", what, b)
		}
		if rec, ok := v.(*store.Record); ok {
			for name := range rec.Fields {
				if _, known := rec.Resource.Field(name); !known {
					t.Errorf("%s has field %q outside the schema", what, name)
				}
			}
		}
	}
	byID, err := db.FindRecordByID(ctx, store.Accounts, w.ID, live.ID)
	if err != nil {
		t.Fatal(err)
	}
	noOutbox("FindRecordByID", byID)
	byExt, err := db.FindRecordByExternalID(ctx, store.Accounts, w.ID, "ext-1")
	if err != nil {
		t.Fatal(err)
	}
	noOutbox("FindRecordByExternalID", byExt)
	list, err := db.FindRecords(ctx, store.Accounts, w.ID, store.RecordQuery{Limit: 10, IncludeDeleted: true})
	if err != nil || len(list) != 2 {
		t.Fatalf("FindRecords = %d records, %v; want 2", len(list), err)
	}
	for _, rec := range list {
		noOutbox("FindRecords", rec)
	}

	keyByID, err := db.FindAPIKeyByID(ctx, w.ID, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	noOutbox("FindAPIKeyByID", keyByID)
	keyUnscoped, err := db.FindAPIKeyByIDUnscoped(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	noOutbox("FindAPIKeyByIDUnscoped", keyUnscoped)
	keyByHash, err := db.FindAPIKeyByHashUnscoped(ctx, k.Hash)
	if err != nil {
		t.Fatal(err)
	}
	noOutbox("FindAPIKeyByHashUnscoped", keyByHash)
	keys, err := db.FindAPIKeys(ctx, w.ID)
	if err != nil || len(keys) != 1 {
		t.Fatalf("FindAPIKeys = %d keys, %v; want 1", len(keys), err)
	}
	noOutbox("FindAPIKeys", keys[0])
	if keyByID.RevokedAt == nil || keyByID.Name != k.Name || !slices.Equal(keyByID.Scopes, k.Scopes) {
		t.Errorf("key read back = %+v, want the revoked key %+v", keyByID, k)
	}
}
