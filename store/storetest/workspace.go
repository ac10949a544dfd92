package storetest

import (
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

func (s *suite) workspaces(t *testing.T) {
	s.test(t, "CreateAndFind", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "Acme GmbH — Zürich 🏔", at(0))
		got, err := b.FindWorkspaceByID(t.Context(), w.ID)
		must(t, err, "FindWorkspaceByID")
		if got.ID != w.ID || got.Name != w.Name {
			t.Errorf("workspace = {%q %q}, want {%q %q}", got.ID, got.Name, w.ID, w.Name)
		}
		wantTime(t, "created_at", got.CreatedAt, w.CreatedAt)
	})

	s.test(t, "UnknownIDNotFound", func(t *testing.T, b store.Backend) {
		newWorkspace(t, b, "one", at(0))
		_, err := b.FindWorkspaceByID(t.Context(), store.NewID())
		wantCode(t, err, store.ENOTFOUND)
	})

	s.test(t, "HostileNameStoredLiterally", func(t *testing.T, b store.Backend) {
		for i, name := range hostile {
			w := newWorkspace(t, b, name, at(time.Duration(i)*time.Second))
			got, err := b.FindWorkspaceByID(t.Context(), w.ID)
			must(t, err, "FindWorkspaceByID")
			if got.Name != name {
				t.Errorf("name = %q, want %q", got.Name, name)
			}
		}
		all, err := b.FindWorkspaces(t.Context())
		must(t, err, "FindWorkspaces")
		if len(all) != len(hostile) {
			t.Errorf("FindWorkspaces returned %d workspaces, want %d", len(all), len(hostile))
		}
	})

	s.test(t, "DuplicateIDConflict", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "first", at(0))
		err := b.CreateWorkspace(t.Context(), &store.Workspace{ID: w.ID, Name: "second", CreatedAt: at(time.Second)})
		wantCode(t, err, store.ECONFLICT)
		got, err := b.FindWorkspaceByID(t.Context(), w.ID)
		must(t, err, "FindWorkspaceByID")
		if got.Name != "first" {
			t.Errorf("name = %q after a conflicting create, want %q", got.Name, "first")
		}
	})

	s.test(t, "ListOldestFirst", func(t *testing.T, b store.Backend) {
		all, err := b.FindWorkspaces(t.Context())
		must(t, err, "FindWorkspaces")
		if len(all) != 0 {
			t.Fatalf("new backend has %d workspaces, want 0", len(all))
		}
		// Created out of order: the list follows created_at, not insertion.
		c := newWorkspace(t, b, "c", at(3*time.Hour))
		a := newWorkspace(t, b, "a", at(1*time.Hour))
		d := newWorkspace(t, b, "d", at(4*time.Hour))
		bb := newWorkspace(t, b, "b", at(2*time.Hour))
		all, err = b.FindWorkspaces(t.Context())
		must(t, err, "FindWorkspaces")
		var got []string
		for _, w := range all {
			got = append(got, w.ID)
		}
		wantIDs(t, "FindWorkspaces", got, []string{a.ID, bb.ID, c.ID, d.ID})
		for _, w := range all {
			if w.ID == c.ID {
				wantTime(t, "created_at", w.CreatedAt, c.CreatedAt)
				if w.Name != "c" {
					t.Errorf("name = %q, want c", w.Name)
				}
			}
		}
	})

	s.test(t, "PolicyRoundTrip", func(t *testing.T, b store.Backend) {
		plain := newWorkspace(t, b, "plain", at(0))
		strict := &store.Workspace{ID: store.NewID(), Name: "strict", CreatedAt: at(time.Second),
			Policy: store.KeyPolicy{MaxLifetimeDays: 366, RequireExpiry: true, DisableUnusedDays: 90}}
		must(t, b.CreateWorkspace(t.Context(), strict), "CreateWorkspace")
		wantPolicy := func(id string, want store.KeyPolicy) {
			t.Helper()
			got, err := b.FindWorkspaceByID(t.Context(), id)
			must(t, err, "FindWorkspaceByID")
			if got.Policy != want {
				t.Errorf("workspace %s: policy = %+v, want %+v", id, got.Policy, want)
			}
			all, err := b.FindWorkspaces(t.Context())
			must(t, err, "FindWorkspaces")
			for _, w := range all {
				if w.ID == id && w.Policy != want {
					t.Errorf("FindWorkspaces: workspace %s has policy %+v, want %+v", id, w.Policy, want)
				}
			}
		}
		wantPolicy(plain.ID, store.KeyPolicy{})
		wantPolicy(strict.ID, strict.Policy)

		// Each update replaces the whole policy of one workspace only.
		for _, p := range []store.KeyPolicy{
			{RequireExpiry: true},
			{MaxLifetimeDays: 30, DisableUnusedDays: 3660},
			{DisableUnusedDays: 1},
			{},
		} {
			must(t, b.UpdateWorkspacePolicy(t.Context(), plain.ID, p), "UpdateWorkspacePolicy")
			wantPolicy(plain.ID, p)
			wantPolicy(strict.ID, strict.Policy)
		}
		wantCode(t, b.UpdateWorkspacePolicy(t.Context(), store.NewID(), store.KeyPolicy{RequireExpiry: true}), store.ENOTFOUND)
		got, err := b.FindWorkspaceByID(t.Context(), strict.ID)
		must(t, err, "FindWorkspaceByID")
		if got.Name != "strict" {
			t.Errorf("name = %q after policy updates, want strict", got.Name)
		}
		wantTime(t, "created_at", got.CreatedAt, strict.CreatedAt)
	})
}
