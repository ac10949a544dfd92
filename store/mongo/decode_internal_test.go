package mongo

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/hustack/hustack/store"
)

// TestDecodersDropOutboxFields decodes a record and a key document that
// still carry waiting events, as a read that did not project them away
// would get them: neither the record nor the key shows them.
func TestDecodersDropOutboxFields(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	entry := outboxEntry{ID: store.NewID(), Type: "account.created", CreatedAt: at, Data: `{"id":"x"}`}

	rec := &store.Record{Resource: store.Accounts, ID: store.NewID(), WorkspaceID: store.NewID(),
		Fields: map[string]any{"name": "Acme"}, CreatedAt: at, UpdatedAt: at}
	doc, err := recordDoc(rec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bson.Marshal(append(doc, insertEvent(entry)...))
	if err != nil {
		t.Fatal(err)
	}
	var stored bson.D
	if err := bson.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	got := recordFromDoc(store.Accounts, stored)
	if len(got.Fields) != 1 || got.Fields["name"] != "Acme" {
		t.Errorf("record fields decoded = %v, want only the name", got.Fields)
	}
	if js, _ := json.Marshal(got); strings.Contains(string(js), "_outbox") {
		t.Errorf("record decoded = %s, shows the outbox", js)
	}

	key := &store.APIKey{ID: store.NewID(), WorkspaceID: store.NewID(), Name: "k", Prefix: "hs_live_abcdef",
		Hash: []byte{1, 2, 3}, Scopes: []store.Scope{"read:accounts"}, CreatedAt: at}
	b, err = bson.Marshal(apiKeyInsert{Key: newAPIKeyDoc(key), Outbox: []outboxEntry{entry}, Pending: true})
	if err != nil {
		t.Fatal(err)
	}
	if raw := bson.Raw(b); raw.Lookup(outboxField).Type != bson.TypeArray || raw.Lookup(outboxPendingField).Type != bson.TypeBoolean {
		t.Fatalf("key document %v lacks the outbox fields", raw)
	}
	var kd apiKeyDoc
	if err := bson.Unmarshal(b, &kd); err != nil {
		t.Fatalf("decode a key document with waiting events: %v", err)
	}
	js, _ := json.Marshal(kd.apiKey())
	if strings.Contains(string(js), "_outbox") || kd.ID != key.ID || kd.Name != "k" {
		t.Errorf("key decoded = %s, want the key without the outbox", js)
	}
}
