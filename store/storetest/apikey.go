package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

func (s *suite) apiKeys(t *testing.T) {
	s.test(t, "CreateAndFindByHash", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k, raw := newKey(w.ID, at(time.Minute))
		must(t, b.CreateAPIKey(t.Context(), k), "CreateAPIKey")
		got, err := b.FindAPIKeyByHashUnscoped(t.Context(), store.HashKey(raw))
		must(t, err, "FindAPIKeyByHashUnscoped")
		wantKey(t, got, k)
	})

	s.test(t, "FieldsRoundTrip", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		cases := []struct {
			name    string
			expires *time.Time
			limit   store.RateLimit
			scopes  []store.Scope
		}{
			{"no expiry, default limit", nil, store.DefaultRateLimit, []store.Scope{"read:accounts"}},
			{"expiry, per minute", ptr(at(720 * time.Hour)), store.RateLimit{Count: 600, Period: time.Minute}, store.AllScopes()},
			{"expiry, odd period", ptr(at(time.Hour + time.Millisecond)), store.RateLimit{Count: 5, Period: 90 * time.Minute}, []store.Scope{"read:usage", "write:notes"}},
			{"per hour", nil, store.RateLimit{Count: 1_000_000, Period: time.Hour}, []store.Scope{"read:deals", "write:deals"}},
		}
		for i, c := range cases {
			k, raw := newKey(w.ID, at(time.Duration(i)*time.Second))
			k.Name = "naïve 🔑 " + c.name
			k.ExpiresAt = c.expires
			k.RateLimit = c.limit
			k.Scopes = c.scopes
			must(t, b.CreateAPIKey(t.Context(), k), "CreateAPIKey")
			byHash, err := b.FindAPIKeyByHashUnscoped(t.Context(), store.HashKey(raw))
			must(t, err, "FindAPIKeyByHashUnscoped")
			wantKey(t, byHash, k)
			byID, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
			must(t, err, "FindAPIKeyByIDUnscoped")
			wantKey(t, byID, k)
		}
	})

	s.test(t, "FindByIDUnscoped", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		k1 := insertKey(t, b, w1.ID, at(time.Second))
		k2 := insertKey(t, b, w2.ID, at(2*time.Second))
		for _, k := range []*store.APIKey{k1, k2} {
			got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
			must(t, err, "FindAPIKeyByIDUnscoped")
			wantKey(t, got, k)
		}
		_, err := b.FindAPIKeyByIDUnscoped(t.Context(), store.NewID())
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "UnknownHashNotFound", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		insertKey(t, b, w.ID, at(time.Second))
		_, err := b.FindAPIKeyByHashUnscoped(t.Context(), store.HashKey(store.GenerateKey()))
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindAPIKeyByHashUnscoped(t.Context(), []byte{})
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "ListPerWorkspaceOldestFirst", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		c := insertKey(t, b, w1.ID, at(3*time.Minute))
		other := insertKey(t, b, w2.ID, at(2*time.Minute))
		a := insertKey(t, b, w1.ID, at(1*time.Minute))
		bk := insertKey(t, b, w1.ID, at(2*time.Minute+time.Millisecond))

		keys, err := b.FindAPIKeys(t.Context(), w1.ID)
		must(t, err, "FindAPIKeys")
		var ids []string
		for _, k := range keys {
			ids = append(ids, k.ID)
			if k.ID == c.ID {
				wantKey(t, k, c)
			}
		}
		wantIDs(t, "FindAPIKeys(w1)", ids, []string{a.ID, bk.ID, c.ID})

		keys, err = b.FindAPIKeys(t.Context(), w2.ID)
		must(t, err, "FindAPIKeys")
		if len(keys) != 1 || keys[0].ID != other.ID {
			t.Errorf("FindAPIKeys(w2) returned %d keys, want only %s", len(keys), other.ID)
		}

		keys, err = b.FindAPIKeys(t.Context(), store.NewID())
		must(t, err, "FindAPIKeys of an unknown workspace")
		if len(keys) != 0 {
			t.Errorf("FindAPIKeys(unknown workspace) returned %d keys, want 0", len(keys))
		}
	})

	s.test(t, "DuplicateHashConflict", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		k := insertKey(t, b, w1.ID, at(time.Second))
		dup, _ := newKey(w2.ID, at(2*time.Second))
		dup.Hash = k.Hash
		wantCode(t, b.CreateAPIKey(t.Context(), dup), store.ECONFLICT)
		_, err := b.FindAPIKeyByIDUnscoped(t.Context(), dup.ID)
		wantCode(t, err, store.ENOTFOUND)
		got, err := b.FindAPIKeyByHashUnscoped(t.Context(), k.Hash)
		must(t, err, "FindAPIKeyByHashUnscoped")
		wantKey(t, got, k)
	})

	s.test(t, "DuplicateIDConflict", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k := insertKey(t, b, w.ID, at(time.Second))
		dup, _ := newKey(w.ID, at(2*time.Second))
		dup.ID = k.ID
		wantCode(t, b.CreateAPIKey(t.Context(), dup), store.ECONFLICT)
		got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
		must(t, err, "FindAPIKeyByIDUnscoped")
		wantKey(t, got, k)
	})

	s.test(t, "RevokeKeepsFirstTime", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k := insertKey(t, b, w.ID, at(time.Second))
		untouched := insertKey(t, b, w.ID, at(2*time.Second))

		must(t, b.RevokeAPIKey(t.Context(), w.ID, k.ID, at(time.Hour)), "RevokeAPIKey")
		must(t, b.RevokeAPIKey(t.Context(), w.ID, k.ID, at(2*time.Hour)), "RevokeAPIKey again")
		got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
		must(t, err, "FindAPIKeyByIDUnscoped")
		k.RevokedAt = ptr(at(time.Hour))
		wantKey(t, got, k)

		got, err = b.FindAPIKeyByHashUnscoped(t.Context(), untouched.Hash)
		must(t, err, "FindAPIKeyByHashUnscoped")
		wantKey(t, got, untouched)
	})

	s.test(t, "RevokeNotFound", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		k := insertKey(t, b, w1.ID, at(time.Second))
		wantCode(t, b.RevokeAPIKey(t.Context(), w1.ID, store.NewID(), at(time.Hour)), store.ENOTFOUND)
		// The right id in the wrong workspace is not found and changes nothing.
		wantCode(t, b.RevokeAPIKey(t.Context(), w2.ID, k.ID, at(time.Hour)), store.ENOTFOUND)
		got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
		must(t, err, "FindAPIKeyByIDUnscoped")
		wantKey(t, got, k)
	})

	s.test(t, "TouchMonotonic", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k1 := insertKey(t, b, w.ID, at(time.Second))
		k2 := insertKey(t, b, w.ID, at(2*time.Second))
		k3 := insertKey(t, b, w.ID, at(3*time.Second))
		lastUsed := func(k *store.APIKey) *time.Time {
			t.Helper()
			got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
			must(t, err, "FindAPIKeyByIDUnscoped")
			return got.LastUsedAt
		}

		must(t, b.TouchAPIKeys(t.Context(), map[string]time.Time{}), "TouchAPIKeys(empty)")
		must(t, b.TouchAPIKeys(t.Context(), map[string]time.Time{k1.ID: at(time.Hour)}), "TouchAPIKeys")
		wantTimePtr(t, "k1 last_used_at", lastUsed(k1), ptr(at(time.Hour)))
		wantTimePtr(t, "k2 last_used_at", lastUsed(k2), nil)

		// An older time never moves last_used_at back.
		must(t, b.TouchAPIKeys(t.Context(), map[string]time.Time{k1.ID: at(time.Minute)}), "TouchAPIKeys(older)")
		wantTimePtr(t, "k1 last_used_at after an older touch", lastUsed(k1), ptr(at(time.Hour)))

		// Unknown ids are ignored; the known ones in the same call advance.
		must(t, b.TouchAPIKeys(t.Context(), map[string]time.Time{
			k1.ID:         at(2 * time.Hour),
			k2.ID:         at(90 * time.Minute),
			store.NewID(): at(3 * time.Hour),
		}), "TouchAPIKeys(with unknown id)")
		wantTimePtr(t, "k1 last_used_at", lastUsed(k1), ptr(at(2*time.Hour)))
		wantTimePtr(t, "k2 last_used_at", lastUsed(k2), ptr(at(90*time.Minute)))
		wantTimePtr(t, "k3 last_used_at", lastUsed(k3), nil)

		// The same time again changes nothing.
		must(t, b.TouchAPIKeys(t.Context(), map[string]time.Time{k2.ID: at(90 * time.Minute)}), "TouchAPIKeys(same)")
		wantTimePtr(t, "k2 last_used_at", lastUsed(k2), ptr(at(90*time.Minute)))

		// Touching does not disturb the rest of the key.
		got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k2.ID)
		must(t, err, "FindAPIKeyByIDUnscoped")
		k2.LastUsedAt = ptr(at(90 * time.Minute))
		wantKey(t, got, k2)
	})

	s.test(t, "TouchConcurrent", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k := insertKey(t, b, w.ID, at(time.Second))
		const workers, rounds = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers*rounds)
		for g := range workers {
			wg.Go(func() {
				for i := range rounds {
					// Each worker touches with its own times, interleaved so
					// that late calls often carry older times.
					tm := at(time.Duration(i*workers+g) * time.Second)
					if i%2 == 1 {
						tm = at(time.Duration(g) * time.Millisecond)
					}
					errs <- b.TouchAPIKeys(t.Context(), map[string]time.Time{k.ID: tm})
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err, "TouchAPIKeys")
		}
		got, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
		must(t, err, "FindAPIKeyByIDUnscoped")
		// The latest time any worker sent: i = rounds-2 (even), g = workers-1.
		wantTimePtr(t, "last_used_at", got.LastUsedAt, ptr(at(time.Duration((rounds-2)*workers+workers-1)*time.Second)))
	})

	s.test(t, "FilterRoundTrip", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		filters := []map[string]string{
			nil,
			{"source": "Vendor XYZ"},
			{"source": "Zoë 株式会社 🚀", "status": "New"},
			{"source": `{"$gt":""}`, "email": "a.b@example.com", "country": `'; DROP TABLE api_keys; --`},
		}
		var keys []*store.APIKey
		for i, f := range filters {
			k, raw := newKey(w.ID, at(time.Duration(i)*time.Second))
			k.Filter = f
			must(t, b.CreateAPIKey(t.Context(), k), "CreateAPIKey")
			keys = append(keys, k)
			byHash, err := b.FindAPIKeyByHashUnscoped(t.Context(), store.HashKey(raw))
			must(t, err, "FindAPIKeyByHashUnscoped")
			wantKey(t, byHash, k)
			byID, err := b.FindAPIKeyByIDUnscoped(t.Context(), k.ID)
			must(t, err, "FindAPIKeyByIDUnscoped")
			wantKey(t, byID, k)
			scoped, err := b.FindAPIKeyByID(t.Context(), w.ID, k.ID)
			must(t, err, "FindAPIKeyByID")
			wantKey(t, scoped, k)
		}
		all, err := b.FindAPIKeys(t.Context(), w.ID)
		must(t, err, "FindAPIKeys")
		if len(all) != len(keys) {
			t.Fatalf("FindAPIKeys returned %d keys, want %d", len(all), len(keys))
		}
		for i := range keys {
			wantKey(t, all[i], keys[i])
		}
	})

	s.test(t, "FindByIDInWorkspace", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		k1 := insertKey(t, b, w1.ID, at(time.Second))
		k2 := insertKey(t, b, w2.ID, at(2*time.Second))
		got, err := b.FindAPIKeyByID(t.Context(), w1.ID, k1.ID)
		must(t, err, "FindAPIKeyByID")
		wantKey(t, got, k1)
		got, err = b.FindAPIKeyByID(t.Context(), w2.ID, k2.ID)
		must(t, err, "FindAPIKeyByID")
		wantKey(t, got, k2)
		// Another workspace's key is not found, exactly like no key.
		_, err = b.FindAPIKeyByID(t.Context(), w2.ID, k1.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindAPIKeyByID(t.Context(), w1.ID, k2.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindAPIKeyByID(t.Context(), w1.ID, store.NewID())
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindAPIKeyByID(t.Context(), store.NewID(), k1.ID)
		wantCode(t, err, store.ENOTFOUND)
		_, err = b.FindAPIKeyByID(t.Context(), `{"$gt":""}`, `{"$gt":""}`)
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "SetExpiry", func(t *testing.T, b store.Backend) {
		w1 := newWorkspace(t, b, "w1", at(0))
		w2 := newWorkspace(t, b, "w2", at(0))
		k := insertKey(t, b, w1.ID, at(time.Second))
		other := insertKey(t, b, w1.ID, at(2*time.Second))
		other.ExpiresAt = ptr(at(72 * time.Hour))
		must(t, b.SetAPIKeyExpiry(t.Context(), w1.ID, other.ID, *other.ExpiresAt), "SetAPIKeyExpiry(other)")

		// A key without an expiry gets one; setting it again replaces it,
		// earlier or later.
		for _, exp := range []time.Time{at(48 * time.Hour), at(time.Hour + time.Millisecond), at(720 * time.Hour)} {
			must(t, b.SetAPIKeyExpiry(t.Context(), w1.ID, k.ID, exp), "SetAPIKeyExpiry")
			got, err := b.FindAPIKeyByID(t.Context(), w1.ID, k.ID)
			must(t, err, "FindAPIKeyByID")
			k.ExpiresAt = ptr(exp)
			wantKey(t, got, k)
		}
		// The right id in the wrong workspace is not found and changes nothing.
		wantCode(t, b.SetAPIKeyExpiry(t.Context(), w2.ID, k.ID, at(time.Minute)), store.ENOTFOUND)
		wantCode(t, b.SetAPIKeyExpiry(t.Context(), w1.ID, store.NewID(), at(time.Minute)), store.ENOTFOUND)
		got, err := b.FindAPIKeyByHashUnscoped(t.Context(), k.Hash)
		must(t, err, "FindAPIKeyByHashUnscoped")
		wantKey(t, got, k)
		got, err = b.FindAPIKeyByID(t.Context(), w1.ID, other.ID)
		must(t, err, "FindAPIKeyByID")
		wantKey(t, got, other)

		// A revoked key keeps its revocation.
		must(t, b.RevokeAPIKey(t.Context(), w1.ID, other.ID, at(time.Hour)), "RevokeAPIKey")
		must(t, b.SetAPIKeyExpiry(t.Context(), w1.ID, other.ID, at(2*time.Hour)), "SetAPIKeyExpiry(revoked)")
		got, err = b.FindAPIKeyByID(t.Context(), w1.ID, other.ID)
		must(t, err, "FindAPIKeyByID")
		other.RevokedAt, other.ExpiresAt = ptr(at(time.Hour)), ptr(at(2*time.Hour))
		wantKey(t, got, other)
	})
}
