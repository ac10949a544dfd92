package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// usageFixture is a small, hand-checked set of events in two workspaces over
// three days.
type usageFixture struct {
	a, b        *store.Workspace
	ka1, ka2    *store.APIKey
	kb          *store.APIKey
	ev          []store.UsageEvent // ev[1] .. ev[8]; ev[0] unused
	day1, day2  string
	day3        string
	allA, allB  []store.UsageEvent
	allEvents   []store.UsageEvent
	day2Start   time.Time
	filterFrom  time.Time // day 1, 10:00, the time of ev[2]
	filterUntil time.Time // day 2, 12:00, the time of ev[5]
}

func newUsageFixture(t *testing.T, b store.Backend) *usageFixture {
	t.Helper()
	f := &usageFixture{}
	f.a = newWorkspace(t, b, "a", at(-time.Hour))
	f.b = newWorkspace(t, b, "b", at(-time.Hour))
	f.ka1 = insertKey(t, b, f.a.ID, at(-time.Hour))
	f.ka2 = insertKey(t, b, f.a.ID, at(-time.Hour))
	f.kb = insertKey(t, b, f.b.ID, at(-time.Hour))

	day := func(n, h, m, sec, ms int) time.Time {
		return time.Date(2025, 1, 14+n, h, m, sec, ms*int(time.Millisecond), time.UTC)
	}
	ev := func(ws *store.Workspace, k *store.APIKey, tm time.Time, method string, status int, route string) store.UsageEvent {
		return store.UsageEvent{
			ID: store.NewID(), WorkspaceID: ws.ID, KeyID: k.ID, Method: method, Route: route, Status: status,
			DurationMS: float64(status) / 7, Time: tm, RequestID: "req-" + store.NewID(),
			Transport: store.TransportREST, UserAgent: "n8n/1.0 «ü» " + route,
		}
	}
	f.ev = []store.UsageEvent{
		{},
		ev(f.a, f.ka1, day(1, 9, 0, 0, 0), "GET", 200, "/api/v1/accounts"),
		ev(f.a, f.ka1, day(1, 10, 0, 0, 0), "POST", 201, "/api/v1/accounts"),
		ev(f.a, f.ka2, day(1, 23, 59, 59, 999), "GET", 404, "/api/v1/accounts/:id"),
		ev(f.a, f.ka1, day(2, 0, 0, 0, 0), "GET", 200, "/api/v1/contacts"),
		ev(f.a, f.ka2, day(2, 12, 0, 0, 0), "GET", 500, "/api/v1/accounts"),
		ev(f.a, f.ka1, day(3, 8, 0, 0, 0), "GET", 429, "/api/v1/accounts"),
		ev(f.b, f.kb, day(1, 11, 0, 0, 0), "GET", 200, "/api/v1/accounts"),
		ev(f.b, f.kb, day(2, 11, 0, 0, 0), "POST", 500, "/api/v1/deals"),
	}
	f.ev[6].Transport = store.TransportMCP
	f.day1, f.day2, f.day3 = "2025-01-15", "2025-01-16", "2025-01-17"
	f.day2Start = day(2, 0, 0, 0, 0)
	f.filterFrom = f.ev[2].Time
	f.filterUntil = f.ev[5].Time
	f.allEvents = f.ev[1:]
	f.allA = f.pick(6, 5, 4, 3, 2, 1)
	f.allB = f.pick(8, 7)
	return f
}

func (f *usageFixture) insert(t *testing.T, b store.Backend) {
	t.Helper()
	must(t, b.InsertUsageEvents(t.Context(), f.allEvents), "InsertUsageEvents")
}

func (f *usageFixture) pick(n ...int) []store.UsageEvent {
	out := make([]store.UsageEvent, len(n))
	for i, j := range n {
		out[i] = f.ev[j]
	}
	return out
}

func wantEvents(t *testing.T, what string, got, want []store.UsageEvent) {
	t.Helper()
	wantIDs(t, what, eventIDs(got), eventIDs(want))
	if len(got) != len(want) {
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		wantTime(t, what+": time", g.Time, w.Time)
		g.Time, w.Time = time.Time{}, time.Time{}
		if g != w {
			t.Errorf("%s: event %d =\n\t%+v\nwant\n\t%+v", what, i, g, w)
		}
	}
}

func wantCounts(t *testing.T, what string, got, want []store.UsageCount) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n\tgot  %+v\n\twant %+v", what, got, want)
	}
}

// sortedCounts orders counts by group key, as CountUsage must.
func sortedCounts(c ...store.UsageCount) []store.UsageCount {
	slices.SortFunc(c, func(a, b store.UsageCount) int { return strings.Compare(a.Group, b.Group) })
	return c
}

func (s *suite) usage(t *testing.T) {
	s.test(t, "InsertIdempotent", func(t *testing.T, b store.Backend) {
		f := newUsageFixture(t, b)
		must(t, b.InsertUsageEvents(t.Context(), nil), "InsertUsageEvents(nil)")
		must(t, b.InsertUsageEvents(t.Context(), f.ev[1:5]), "InsertUsageEvents(first batch)")
		// The second batch overlaps the first; then the whole set again.
		must(t, b.InsertUsageEvents(t.Context(), f.ev[3:9]), "InsertUsageEvents(overlapping batch)")
		must(t, b.InsertUsageEvents(t.Context(), f.allEvents), "InsertUsageEvents(everything again)")
		got, err := b.FindUsageEvents(t.Context(), f.a.ID, store.UsageQuery{Limit: 100})
		must(t, err, "FindUsageEvents")
		wantEvents(t, "workspace a", got, f.allA)
		got, err = b.FindUsageEvents(t.Context(), f.b.ID, store.UsageQuery{Limit: 100})
		must(t, err, "FindUsageEvents")
		wantEvents(t, "workspace b", got, f.allB)
	})

	s.test(t, "InsertDuplicateWithinBatch", func(t *testing.T, b store.Backend) {
		f := newUsageFixture(t, b)
		batch := []store.UsageEvent{f.ev[1], f.ev[2], f.ev[1], f.ev[2], f.ev[3]}
		must(t, b.InsertUsageEvents(t.Context(), batch), "InsertUsageEvents")
		got, err := b.FindUsageEvents(t.Context(), f.a.ID, store.UsageQuery{Limit: 100})
		must(t, err, "FindUsageEvents")
		wantEvents(t, "workspace a", got, f.pick(3, 2, 1))
	})

	s.test(t, "InsertLargeBatch", func(t *testing.T, b store.Backend) {
		w := newWorkspace(t, b, "w", at(0))
		k := insertKey(t, b, w.ID, at(0))
		const n = 1000
		events := make([]store.UsageEvent, n)
		for i := range events {
			events[i] = store.UsageEvent{ID: store.NewID(), WorkspaceID: w.ID, KeyID: k.ID, Method: "GET",
				Route: "/api/v1/accounts", Status: 200 + i%2*200, DurationMS: 0.5, Time: at(time.Duration(i) * time.Second),
				RequestID: fmt.Sprint(i), Transport: store.TransportREST}
		}
		must(t, b.InsertUsageEvents(t.Context(), events), "InsertUsageEvents")
		must(t, b.InsertUsageEvents(t.Context(), events[n/2:]), "InsertUsageEvents(second half again)")
		counts, err := b.CountUsage(t.Context(), w.ID, store.UsageQuery{}, store.GroupByRoute)
		must(t, err, "CountUsage")
		wantCounts(t, "CountUsage by route", counts, []store.UsageCount{{Group: "/api/v1/accounts", Count: n, Errors: n / 2}})
	})

	s.test(t, "FindFilters", func(t *testing.T, b store.Backend) {
		f := newUsageFixture(t, b)
		f.insert(t, b)
		cases := []struct {
			name string
			ws   string
			q    store.UsageQuery
			want []store.UsageEvent
		}{
			{"all of a", f.a.ID, store.UsageQuery{Limit: 100}, f.allA},
			{"all of b", f.b.ID, store.UsageQuery{Limit: 100}, f.allB},
			{"key", f.a.ID, store.UsageQuery{KeyID: f.ka1.ID, Limit: 100}, f.pick(6, 4, 2, 1)},
			{"key of another workspace", f.a.ID, store.UsageQuery{KeyID: f.kb.ID, Limit: 100}, nil},
			{"status", f.a.ID, store.UsageQuery{Status: 200, Limit: 100}, f.pick(4, 1)},
			{"status of no event", f.a.ID, store.UsageQuery{Status: 503, Limit: 100}, nil},
			{"from inclusive, to exclusive", f.a.ID, store.UsageQuery{From: f.filterFrom, To: f.filterUntil, Limit: 100}, f.pick(4, 3, 2)},
			{"from only", f.a.ID, store.UsageQuery{From: f.day2Start, Limit: 100}, f.pick(6, 5, 4)},
			{"to only", f.a.ID, store.UsageQuery{To: f.day2Start, Limit: 100}, f.pick(3, 2, 1)},
			{"key and status and time", f.a.ID, store.UsageQuery{KeyID: f.ka2.ID, Status: 404, From: f.filterFrom, To: f.filterUntil, Limit: 100}, f.pick(3)},
			{"limit", f.a.ID, store.UsageQuery{Limit: 2}, f.pick(6, 5)},
			{"limit and offset", f.a.ID, store.UsageQuery{Limit: 2, Offset: 1}, f.pick(5, 4)},
			{"offset near the end", f.a.ID, store.UsageQuery{Limit: 10, Offset: 5}, f.pick(1)},
			{"offset past the end", f.a.ID, store.UsageQuery{Limit: 10, Offset: 10}, nil},
			{"filter and page", f.a.ID, store.UsageQuery{KeyID: f.ka1.ID, Limit: 2, Offset: 1}, f.pick(4, 2)},
			{"unknown workspace", store.NewID(), store.UsageQuery{Limit: 100}, nil},
		}
		for _, c := range cases {
			got, err := b.FindUsageEvents(t.Context(), c.ws, c.q)
			must(t, err, c.name)
			wantEvents(t, c.name, got, c.want)
		}
	})

	s.test(t, "CountUsage", func(t *testing.T, b store.Backend) {
		f := newUsageFixture(t, b)
		f.insert(t, b)
		cases := []struct {
			name string
			ws   string
			q    store.UsageQuery
			by   store.UsageGroup
			want []store.UsageCount
		}{
			{"a by day", f.a.ID, store.UsageQuery{}, store.GroupByDay,
				[]store.UsageCount{uc(f.day1, 3, 1), uc(f.day2, 2, 1), uc(f.day3, 1, 1)}},
			{"a by key", f.a.ID, store.UsageQuery{}, store.GroupByKey,
				sortedCounts(uc(f.ka1.ID, 4, 1), uc(f.ka2.ID, 2, 2))},
			{"a by route", f.a.ID, store.UsageQuery{}, store.GroupByRoute,
				[]store.UsageCount{uc("/api/v1/accounts", 4, 2), uc("/api/v1/accounts/:id", 1, 1), uc("/api/v1/contacts", 1, 0)}},
			{"a by status", f.a.ID, store.UsageQuery{}, store.GroupByStatus,
				[]store.UsageCount{uc("200", 2, 0), uc("201", 1, 0), uc("404", 1, 1), uc("429", 1, 1), uc("500", 1, 1)}},
			{"a by day in a time range", f.a.ID, store.UsageQuery{From: f.filterFrom, To: f.filterUntil}, store.GroupByDay,
				[]store.UsageCount{uc(f.day1, 2, 1), uc(f.day2, 1, 0)}},
			{"a by status for one key", f.a.ID, store.UsageQuery{KeyID: f.ka2.ID}, store.GroupByStatus,
				[]store.UsageCount{uc("404", 1, 1), uc("500", 1, 1)}},
			{"a by day for one status", f.a.ID, store.UsageQuery{Status: 500}, store.GroupByDay,
				[]store.UsageCount{uc(f.day2, 1, 1)}},
			{"limit and offset are ignored", f.a.ID, store.UsageQuery{Limit: 1, Offset: 2}, store.GroupByDay,
				[]store.UsageCount{uc(f.day1, 3, 1), uc(f.day2, 2, 1), uc(f.day3, 1, 1)}},
			{"b by route", f.b.ID, store.UsageQuery{}, store.GroupByRoute,
				[]store.UsageCount{uc("/api/v1/accounts", 1, 0), uc("/api/v1/deals", 1, 1)}},
			{"b by key", f.b.ID, store.UsageQuery{}, store.GroupByKey,
				[]store.UsageCount{uc(f.kb.ID, 2, 1)}},
			{"key of another workspace", f.a.ID, store.UsageQuery{KeyID: f.kb.ID}, store.GroupByDay, nil},
			{"unknown workspace", store.NewID(), store.UsageQuery{}, store.GroupByStatus, nil},
		}
		for _, c := range cases {
			got, err := b.CountUsage(t.Context(), c.ws, c.q, c.by)
			must(t, err, c.name)
			wantCounts(t, c.name, got, c.want)
		}
	})

	s.test(t, "DeleteBefore", func(t *testing.T, b store.Backend) {
		f := newUsageFixture(t, b)
		f.insert(t, b)
		n, err := b.DeleteUsageBefore(t.Context(), f.day2Start)
		must(t, err, "DeleteUsageBefore")
		// ev 1, 2, 3 of a and ev 7 of b are older; ev 4 is exactly at the cut.
		if n != 4 {
			t.Errorf("DeleteUsageBefore deleted %d events, want 4", n)
		}
		got, err := b.FindUsageEvents(t.Context(), f.a.ID, store.UsageQuery{Limit: 100})
		must(t, err, "FindUsageEvents")
		wantEvents(t, "workspace a after retention", got, f.pick(6, 5, 4))
		got, err = b.FindUsageEvents(t.Context(), f.b.ID, store.UsageQuery{Limit: 100})
		must(t, err, "FindUsageEvents")
		wantEvents(t, "workspace b after retention", got, f.pick(8))

		n, err = b.DeleteUsageBefore(t.Context(), f.day2Start)
		must(t, err, "DeleteUsageBefore again")
		if n != 0 {
			t.Errorf("DeleteUsageBefore again deleted %d events, want 0", n)
		}
		// Deleted events can be inserted again (their ids are free).
		must(t, b.InsertUsageEvents(t.Context(), f.pick(1)), "InsertUsageEvents")
		got, err = b.FindUsageEvents(t.Context(), f.a.ID, store.UsageQuery{Limit: 100})
		must(t, err, "FindUsageEvents")
		wantEvents(t, "workspace a after re-insert", got, f.pick(6, 5, 4, 1))
	})
}

func uc(group string, count, errors int64) store.UsageCount {
	return store.UsageCount{Group: group, Count: count, Errors: errors}
}
