package sqlite

import (
	"database/sql"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestInsertViewFollowsFields opens a file whose insert view of accounts
// predates the country field: Open replaces the view and its trigger, and
// both the record and its event then carry the field.
func TestInsertViewFollowsFields(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "view.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	old := *store.Accounts
	old.Fields = slices.DeleteFunc(slices.Clone(old.Fields), func(f store.Field) bool { return f.Name == "country" })
	name, view, trigger := insertView(&old)
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, s := range []string{"DROP VIEW " + quote(name), view, trigger} {
		if _, err := raw.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2025, 1, 15, 10, 0, 0, 0, time.UTC)
	rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: store.NewID(),
		Fields: map[string]any{"name": "Acme", "country": "Österreich"}, CreatedAt: now, UpdatedAt: now, CreatedVia: store.CreatedViaAPI}
	if err := db.InsertRecord(ctx, rec); err != nil {
		t.Fatal(err)
	}
	got, err := db.FindRecordByID(ctx, store.Accounts, rec.WorkspaceID, rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fields["country"] != "Österreich" {
		t.Errorf("country = %v after the view was replaced", got.Fields["country"])
	}
	evs, err := db.ClaimEvents(ctx, now, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("%d events, want the created event", len(evs))
	}
	var data map[string]any
	if err := json.Unmarshal(evs[0].Data, &data); err != nil {
		t.Fatal(err)
	}
	if evs[0].ID == "" || evs[0].Type != "account.created" || evs[0].WorkspaceID != rec.WorkspaceID ||
		data["id"] != rec.ID || data["country"] != "Österreich" {
		t.Errorf("event = %+v, data %s", evs[0], evs[0].Data)
	}
}
