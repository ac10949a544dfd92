package sqlite_test

import (
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestOutboxFailureUndoesTheWrite makes every outbox INSERT fail and checks
// that no write it would have announced is stored: a change is never
// stored without its event.
func TestOutboxFailureUndoesTheWrite(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	defer db.Close()
	svc := store.NewService(db, store.WithKeyCacheTTL(0))
	w, k, raw := seed(t, svc)
	p, err := svc.Authenticate(ctx, raw)
	must(t, err)
	sc := svc.Scoped(p)
	rec, err := sc.CreateRecord(ctx, store.Leads, map[string]any{"name": "Lead", "source": "Web"})
	must(t, err)
	soon := svc.Now().Add(24 * time.Hour)
	expiring, _, err := svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: w.ID, Name: "soon", Scopes: []store.Scope{"read:leads"}, ExpiresAt: &soon})
	must(t, err)
	before, err := db.ClaimEvents(ctx, t0, t0.AddDate(100, 0, 0), 100)
	must(t, err)

	conn, err := sql.Open("sqlite", db.Path())
	must(t, err)
	defer conn.Close()
	_, err = conn.Exec(`CREATE TRIGGER outbox_refuses BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox refuses'); END`)
	must(t, err)

	if _, err := sc.CreateRecord(ctx, store.Leads, map[string]any{"name": "Never", "external_id": "never"}); err == nil {
		t.Error("CreateRecord succeeded without its event")
	}
	if _, err := db.FindRecordByExternalID(ctx, store.Leads, w.ID, "never"); store.ErrorCode(err) != store.ENOTFOUND {
		t.Errorf("the record of a failed create: %v, want not_found", err)
	}
	if _, err := sc.UpdateRecord(ctx, store.Leads, rec.ID, map[string]any{"name": "Changed"}); err == nil {
		t.Error("UpdateRecord succeeded without its event")
	}
	if err := sc.DeleteRecord(ctx, store.Leads, rec.ID); err == nil {
		t.Error("DeleteRecord succeeded without its event")
	}
	got, err := db.FindRecordByID(ctx, store.Leads, w.ID, rec.ID)
	must(t, err)
	if got.Fields["name"] != "Lead" || !got.UpdatedAt.Equal(rec.UpdatedAt) {
		t.Errorf("the record after a failed update and delete = %+v", got)
	}
	if _, _, err := svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: w.ID, Name: "never", Scopes: []store.Scope{"read:leads"}}); err == nil {
		t.Error("CreateAPIKey succeeded without its event")
	}
	if _, err := svc.RevokeAPIKey(ctx, k.ID); err == nil {
		t.Error("RevokeAPIKey succeeded without its event")
	}
	if _, err := svc.AnnounceExpiringKeys(ctx); err == nil {
		t.Error("AnnounceExpiringKeys succeeded without its event")
	}
	keys, err := db.FindAPIKeys(ctx, w.ID)
	must(t, err)
	if len(keys) != 2 || keys[0].RevokedAt != nil {
		t.Errorf("keys after failed writes: %d, first revoked at %v", len(keys), keys[0].RevokedAt)
	}
	if evs, err := db.ClaimEvents(ctx, t0, t0.AddDate(100, 0, 0), 100); err != nil || len(evs) != len(before) {
		t.Errorf("the outbox holds %d events (%v), want the %d stored before", len(evs), err, len(before))
	}

	// Once the outbox takes events again, so do the writes; the key's
	// expiry was not marked as announced by the failed attempt.
	_, err = conn.Exec(`DROP TRIGGER outbox_refuses`)
	must(t, err)
	ok, err := db.MarkAPIKeyExpiring(ctx, w.ID, expiring.ID, svc.Now())
	must(t, err)
	if !ok {
		t.Error("MarkAPIKeyExpiring after a failed attempt reported false")
	}
	_, err = sc.UpdateRecord(ctx, store.Leads, rec.ID, map[string]any{"name": "Changed"})
	must(t, err)
}

// TestClaimEventsConcurrent claims from several goroutines at once: every
// event is claimed exactly once.
func TestClaimEventsConcurrent(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	defer db.Close()
	ws := store.NewID()
	var want []string
	for i := range 200 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		rec := &store.Record{Resource: store.Notes, ID: store.NewID(), WorkspaceID: ws, Fields: map[string]any{"content": "n"},
			CreatedAt: now, UpdatedAt: now, CreatedVia: store.CreatedViaAPI}
		must(t, db.InsertRecord(ctx, rec))
		want = append(want, rec.ID)
	}
	var (
		mu      sync.Mutex
		claimed []string
		wg      sync.WaitGroup
	)
	now := t0.Add(time.Hour)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				evs, err := db.ClaimEvents(ctx, now, now.Add(-time.Minute), 7)
				if err != nil {
					t.Error(err)
					return
				}
				if len(evs) == 0 {
					return
				}
				mu.Lock()
				for _, ev := range evs {
					claimed = append(claimed, ev.ID)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != len(want) {
		t.Fatalf("claimed %d events, want %d", len(claimed), len(want))
	}
	slices.Sort(claimed)
	if len(slices.Compact(claimed)) != len(want) {
		t.Error("an event was claimed twice")
	}
}

// TestClaimEventsWithDuplicateIDs stores two waiting events with one id,
// which no write does: claims still take every event, the duplicate as
// one, and then the ones stored after it.
func TestClaimEventsWithDuplicateIDs(t *testing.T) {
	ctx := t.Context()
	db := openTemp(t)
	defer db.Close()
	raw, err := sql.Open("sqlite", db.Path())
	must(t, err)
	defer raw.Close()
	dup := store.NewID()
	for range 2 {
		_, err := raw.Exec(`INSERT INTO outbox (id, workspace_id, type, created_at, data) VALUES (?, 'w', 'lead.created', 0, ?)`, dup, []byte(`{}`))
		must(t, err)
	}
	ws := store.NewID()
	rec := &store.Record{Resource: store.Leads, ID: store.NewID(), WorkspaceID: ws, Fields: map[string]any{"name": "After"},
		CreatedAt: t0, UpdatedAt: t0, CreatedVia: store.CreatedViaAPI}
	must(t, db.InsertRecord(ctx, rec))

	now := t0.Add(time.Hour)
	evs, err := db.ClaimEvents(ctx, now, now.Add(-time.Minute), 2)
	must(t, err)
	if len(evs) != 2 || evs[0].ID != dup || evs[1].ID != dup {
		t.Fatalf("first claim = %v, want the duplicate twice", eventIDs(evs))
	}
	evs, err = db.ClaimEvents(ctx, now, now.Add(-time.Minute), 10)
	must(t, err)
	if len(evs) != 1 || evs[0].WorkspaceID != ws || evs[0].Type != "lead.created" {
		t.Fatalf("second claim = %v, want the record's event", eventIDs(evs))
	}
	must(t, db.DeleteEvents(ctx, []string{dup, evs[0].ID}))
	if evs, err := db.ClaimEvents(ctx, now.Add(time.Hour), now.Add(time.Hour), 10); err != nil || len(evs) != 0 {
		t.Errorf("the outbox after deleting all holds %v (%v), want nothing", eventIDs(evs), err)
	}
}

func eventIDs(evs []store.Event) []string {
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}
