package storetest

import (
	"bytes"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

func newIdemKey(ws, key string, created time.Time) *store.IdempotencyKey {
	return &store.IdempotencyKey{WorkspaceID: ws, Key: key, Fingerprint: "POST /api/v1/accounts sha256:" + key,
		State: store.IdempotencyInProgress, CreatedAt: created, ExpiresAt: created.Add(24 * time.Hour)}
}

func wantIdemKey(t *testing.T, got, want *store.IdempotencyKey) {
	t.Helper()
	if got == nil {
		t.Fatalf("got nil idempotency key, want %q", want.Key)
	}
	if got.WorkspaceID != want.WorkspaceID || got.Key != want.Key || got.Fingerprint != want.Fingerprint || got.State != want.State {
		t.Errorf("key = {ws %q key %q fingerprint %q state %q}, want {ws %q key %q fingerprint %q state %q}",
			got.WorkspaceID, got.Key, got.Fingerprint, got.State, want.WorkspaceID, want.Key, want.Fingerprint, want.State)
	}
	if got.Response.Status != want.Response.Status || !bytes.Equal(got.Response.Body, want.Response.Body) {
		t.Errorf("key %q: response = %d %q, want %d %q", want.Key, got.Response.Status, abbrev(got.Response.Body),
			want.Response.Status, abbrev(want.Response.Body))
	}
	wantTime(t, "created_at", got.CreatedAt, want.CreatedAt)
	wantTime(t, "expires_at", got.ExpiresAt, want.ExpiresAt)
}

func abbrev(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}

func (s *suite) idempotency(t *testing.T) {
	s.test(t, "CreateFindComplete", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k := newIdemKey(w.ID, "order-42", at(time.Second))
		must(t, b.CreateIdempotencyKey(t.Context(), k), "CreateIdempotencyKey")
		got, err := b.FindIdempotencyKey(t.Context(), w.ID, "order-42")
		must(t, err, "FindIdempotencyKey")
		wantIdemKey(t, got, k)

		// A body is stored byte for byte, whatever it holds.
		body := []byte("{\"id\":\"x\"}\x00\xff\xfe binary \n")
		body = append(body, bytes.Repeat([]byte("0123456789"), 20_000)...)
		resp := store.IdempotentResponse{Status: 201, Body: body}
		must(t, b.CompleteIdempotencyKey(t.Context(), w.ID, "order-42", resp), "CompleteIdempotencyKey")
		k.State, k.Response = store.IdempotencyCompleted, resp
		got, err = b.FindIdempotencyKey(t.Context(), w.ID, "order-42")
		must(t, err, "FindIdempotencyKey")
		wantIdemKey(t, got, k)

		// An empty body and a 4xx status are kept too.
		k2 := newIdemKey(w.ID, "order-43", at(2*time.Second))
		must(t, b.CreateIdempotencyKey(t.Context(), k2), "CreateIdempotencyKey")
		k2.State, k2.Response = store.IdempotencyCompleted, store.IdempotentResponse{Status: 204}
		must(t, b.CompleteIdempotencyKey(t.Context(), w.ID, "order-43", k2.Response), "CompleteIdempotencyKey")
		got, err = b.FindIdempotencyKey(t.Context(), w.ID, "order-43")
		must(t, err, "FindIdempotencyKey")
		wantIdemKey(t, got, k2)
	})

	s.test(t, "KeysPerWorkspace", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		k := newIdemKey(w1.ID, "same", at(time.Second))
		must(t, b.CreateIdempotencyKey(t.Context(), k), "CreateIdempotencyKey")
		again := newIdemKey(w1.ID, "same", at(2*time.Second))
		again.Fingerprint = "another request"
		wantCode(t, b.CreateIdempotencyKey(t.Context(), again), store.ECONFLICT)
		got, err := b.FindIdempotencyKey(t.Context(), w1.ID, "same")
		must(t, err, "FindIdempotencyKey")
		wantIdemKey(t, got, k)

		k2 := newIdemKey(w2.ID, "same", at(3*time.Second))
		must(t, b.CreateIdempotencyKey(t.Context(), k2), "CreateIdempotencyKey in another workspace")
		must(t, b.CompleteIdempotencyKey(t.Context(), w2.ID, "same", store.IdempotentResponse{Status: 200, Body: []byte("w2")}), "CompleteIdempotencyKey")
		got, err = b.FindIdempotencyKey(t.Context(), w1.ID, "same")
		must(t, err, "FindIdempotencyKey")
		wantIdemKey(t, got, k)

		_, err = b.FindIdempotencyKey(t.Context(), w1.ID, "SAME")
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindIdempotencyKey(t.Context(), store.NewID(), "same")
		wantCode(t, err, store.ENOTFOUND)

		// Deleting a key created at another time is a no-op: the key was
		// taken again meanwhile.
		must(t, b.DeleteIdempotencyKey(t.Context(), w1.ID, "same", k.CreatedAt.Add(time.Millisecond)), "DeleteIdempotencyKey")
		_, err = b.FindIdempotencyKey(t.Context(), w1.ID, "same")
		must(t, err, "FindIdempotencyKey after deleting another version")
		// Deleting in one workspace leaves the other's.
		must(t, b.DeleteIdempotencyKey(t.Context(), w1.ID, "same", k.CreatedAt), "DeleteIdempotencyKey")
		_, err = b.FindIdempotencyKey(t.Context(), w1.ID, "same")
		wantCode(t, err, store.ENOTFOUND)
		got, err = b.FindIdempotencyKey(t.Context(), w2.ID, "same")
		must(t, err, "FindIdempotencyKey")
		k2.State, k2.Response = store.IdempotencyCompleted, store.IdempotentResponse{Status: 200, Body: []byte("w2")}
		wantIdemKey(t, got, k2)
		// A deleted key can be created again; deleting an unknown key is no error.
		must(t, b.CreateIdempotencyKey(t.Context(), again), "CreateIdempotencyKey after delete")
		got, err = b.FindIdempotencyKey(t.Context(), w1.ID, "same")
		must(t, err, "FindIdempotencyKey")
		wantIdemKey(t, got, again)
		must(t, b.DeleteIdempotencyKey(t.Context(), w1.ID, "never used", again.CreatedAt), "DeleteIdempotencyKey of an unknown key")
	})

	s.test(t, "HostileKeys", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		var keys []*store.IdempotencyKey
		for i, h := range hostile {
			k := newIdemKey(w.ID, h, at(time.Duration(i)*time.Second))
			must(t, b.CreateIdempotencyKey(t.Context(), k), "CreateIdempotencyKey")
			keys = append(keys, k)
		}
		for _, k := range keys {
			got, err := b.FindIdempotencyKey(t.Context(), w.ID, k.Key)
			must(t, err, "FindIdempotencyKey")
			wantIdemKey(t, got, k)
		}
		for _, pattern := range []string{".*", "^", "%", "_"} {
			_, err := b.FindIdempotencyKey(t.Context(), w.ID, pattern)
			wantCode(t, err, store.ENOTFOUND)
		}
	})

	s.test(t, "DeleteBefore", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		cutoff := at(48 * time.Hour)
		cases := []struct {
			ws      string
			key     string
			expires time.Time
			keep    bool
		}{
			{w1.ID, "a", at(time.Hour), false},
			{w1.ID, "b", cutoff.Add(-time.Millisecond), false},
			{w1.ID, "c", cutoff, true}, // expires at the cutoff, not before it
			{w1.ID, "d", cutoff.Add(time.Hour), true},
			{w2.ID, "a", at(2 * time.Hour), false},
			{w2.ID, "e", cutoff.Add(time.Millisecond), true},
		}
		for _, c := range cases {
			k := newIdemKey(c.ws, c.key, at(0))
			k.ExpiresAt = c.expires
			must(t, b.CreateIdempotencyKey(t.Context(), k), "CreateIdempotencyKey")
		}
		must(t, b.CompleteIdempotencyKey(t.Context(), w1.ID, "a", store.IdempotentResponse{Status: 200, Body: []byte("{}")}), "CompleteIdempotencyKey")
		n, err := b.DeleteIdempotencyKeysBefore(t.Context(), cutoff)
		must(t, err, "DeleteIdempotencyKeysBefore")
		if n != 3 {
			t.Errorf("DeleteIdempotencyKeysBefore removed %d keys, want 3", n)
		}
		for _, c := range cases {
			_, err := b.FindIdempotencyKey(t.Context(), c.ws, c.key)
			switch {
			case c.keep && err != nil:
				t.Errorf("key %q expiring %v: %v, want it kept", c.key, c.expires, err)
			case !c.keep && store.ErrorCode(err) != store.ENOTFOUND:
				t.Errorf("key %q expiring %v: %v, want it deleted", c.key, c.expires, err)
			}
		}
		n, err = b.DeleteIdempotencyKeysBefore(t.Context(), cutoff)
		must(t, err, "DeleteIdempotencyKeysBefore again")
		if n != 0 {
			t.Errorf("a second DeleteIdempotencyKeysBefore removed %d keys, want 0", n)
		}
	})
}
