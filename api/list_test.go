package api_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

// TestListParams checks sorting, cursors, filters, search and time bounds of
// record lists, on each backend, over records whose times the test sets.
func TestListParams(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		clock := newTestClock()
		e := newEnv(t, open(t), withClock(clock))
		base := clock.Now().Add(time.Minute)
		at := func(d time.Duration) time.Time { return base.Add(d) }
		sec := func(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }
		sa := e.scoped(e.keyA)
		ctx := t.Context()

		// Accounts of workspace A, created one second apart.
		specs := []map[string]any{
			{"name": "Acme Corp", "industry": "Software", "country": "US", "email": "info@acme.example", "external_id": "A-0"},
			{"name": "acme labs", "industry": "Retail", "country": "DE"},
			{"name": "Globex", "industry": "Software", "country": "US"},
			{"name": "100% Pure", "industry": "Food"},
			{"name": "under_score Ltd"},
			{"name": "Dot.Star (.*) Inc"},
			{"name": `Back\slash Co`},
			{"name": "Ünïcode GmbH"},
			{"name": "Initech", "industry": "Software", "country": "DE"},
			{"name": "Gone Inc", "industry": "Software", "external_id": "G-9"},
		}
		recs := make([]*store.Record, len(specs))
		for i, f := range specs {
			clock.set(at(sec(float64(i))))
			rec, err := sa.CreateRecord(ctx, store.Accounts, f)
			if err != nil {
				t.Fatalf("create %v: %v", f["name"], err)
			}
			recs[i] = rec
			if i == 5 { // workspace B's look-alike, between A's records
				clock.set(at(sec(5.5)))
				e.create(e.keyB, store.Accounts, map[string]any{"name": "Acme B", "industry": "Software", "country": "US", "external_id": "A-0"})
			}
		}
		clock.set(at(sec(20)))
		if _, err := sa.UpdateRecord(ctx, store.Accounts, recs[8].ID, map[string]any{"country": "FR"}); err != nil {
			t.Fatal(err)
		}
		clock.set(at(sec(21)))
		if err := sa.DeleteRecord(ctx, store.Accounts, recs[9].ID); err != nil {
			t.Fatal(err)
		}
		clock.set(at(sec(30)))

		// names lists a page by name; a tombstone shows as deleted:<external_id>.
		names := func(p page) []string {
			var out []string
			for _, d := range p.Data {
				if d["deleted"] == true {
					out = append(out, fmt.Sprintf("deleted:%v", d["external_id"]))
					continue
				}
				out = append(out, d["name"].(string))
			}
			return out
		}
		want := func(names_ ...string) func(t *testing.T, r response) {
			return func(t *testing.T, r response) {
				t.Helper()
				p := decodePage(t, r)
				if got := names(p); !slices.Equal(got, names_) {
					t.Errorf("got  %q\nwant %q", got, names_)
				}
				if !strings.Contains(string(r.body), `"next_cursor":`) {
					t.Errorf("no pagination.next_cursor: %s", clip(r.body))
				}
				if p.Pagination.HasMore != (p.Pagination.NextCursor != nil) {
					t.Errorf("has_more %v, next_cursor %v", p.Pagination.HasMore, p.Pagination.NextCursor)
				}
			}
		}
		list := func(q string) request {
			return request{method: http.MethodGet, path: "/api/v1/accounts?" + q, key: e.keyA}
		}
		ts := func(d time.Duration) string { return url.QueryEscape(at(d).Format(time.RFC3339Nano)) }
		newestFirst := []string{"Initech", "Ünïcode GmbH", `Back\slash Co`, "Dot.Star (.*) Inc", "under_score Ltd", "100% Pure", "Globex", "acme labs", "Acme Corp"}
		oldestFirst := slices.Clone(newestFirst)
		slices.Reverse(oldestFirst)
		cursorOf := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

		run(t, e, []group{
			{http.StatusOK, []scenario{
				{name: "default newest first", req: list(""), check: want(newestFirst...)},
				{name: "sort -created_at", req: list("sort=-created_at"), check: want(newestFirst...)},
				{name: "sort created_at", req: list("sort=created_at"), check: want(oldestFirst...)},
				{name: "sort -updated_at", req: list("sort=-updated_at"), check: want(append([]string{"Initech"}, newestFirst[1:]...)...)},
				{name: "sort updated_at", req: list("sort=updated_at"), check: want(append(slices.Clone(oldestFirst[:8]), "Initech")...)},
				{name: "limit and offset", req: list("sort=created_at&limit=2&offset=1"), check: want("acme labs", "Globex")},
				{name: "filter", req: list("industry=Software"), check: want("Initech", "Globex", "Acme Corp")},
				{name: "two filters", req: list("industry=Software&country=US"), check: want("Globex", "Acme Corp")},
				{name: "filter sees updates", req: list("country=DE"), check: want("acme labs")},
				{name: "filter on the updated value", req: list("country=FR"), check: want("Initech")},
				{name: "filter is exact", req: list("industry=Soft"), check: want()},
				{name: "filter value trimmed", req: list("industry=%20Retail%20"), check: want("acme labs")},
				{name: "email filter", req: list("email=info@acme.example"), check: want("Acme Corp")},
				{name: "external id filter", req: list("external_id=A-0"), check: want("Acme Corp")},
				{name: "filter with operator text", req: list("industry=" + url.QueryEscape(`{"$ne":""}`)), check: want()},
				{name: "q", req: list("q=acme"), check: want("acme labs", "Acme Corp")},
				{name: "q any case", req: list("q=ACME"), check: want("acme labs", "Acme Corp")},
				{name: "q trimmed", req: list("q=%20%20acme%20"), check: want("acme labs", "Acme Corp")},
				{name: "q percent", req: list("q=%25"), check: want("100% Pure")},
				{name: "q underscore", req: list("q=_"), check: want("under_score Ltd")},
				{name: "q dot star", req: list("q=.*"), check: want("Dot.Star (.*) Inc")},
				{name: "q group", req: list("q=" + url.QueryEscape("(.*)")), check: want("Dot.Star (.*) Inc")},
				{name: "q backslash", req: list("q=" + url.QueryEscape(`\`)), check: want(`Back\slash Co`)},
				{name: "q regex dot", req: list("q=G.obex"), check: want()},
				{name: "q anchor", req: list("q=" + url.QueryEscape("^Acme")), check: want()},
				{name: "q class", req: list("q=" + url.QueryEscape("[a-z]+")), check: want()},
				{name: "q catastrophic pattern", req: list("q=" + url.QueryEscape("(a+)+$"+strings.Repeat("a", 50))), check: want()},
				{name: "q LIKE escape", req: list("q=" + url.QueryEscape(`\%`)), check: want()},
				{name: "q unicode", req: list("q=" + url.QueryEscape("Ünï")), check: want("Ünïcode GmbH")},
				{name: "q and filter", req: list("q=acme&industry=Software"), check: want("Acme Corp")},
				{name: "created_after exclusive", req: list("created_after=" + ts(sec(2))), check: want(newestFirst[:6]...)},
				{name: "created_after between records", req: list("created_after=" + ts(sec(1.5))), check: want(newestFirst[:7]...)},
				{name: "created_before exclusive", req: list("created_before=" + ts(sec(2))), check: want("acme labs", "Acme Corp")},
				{name: "created window", req: list("created_after=" + ts(sec(2)) + "&created_before=" + ts(sec(5))), check: want("under_score Ltd", "100% Pure")},
				{name: "time with offset", req: list("created_after=" + url.QueryEscape(at(sec(2)).In(time.FixedZone("", 2*3600)).Format(time.RFC3339))),
					check: want(newestFirst[:6]...)},
				{name: "updated_after", req: list("updated_after=" + ts(sec(10))), check: want("Initech")},
				{name: "updated_before", req: list("updated_before=" + ts(sec(1)) + "&sort=updated_at"), check: want("Acme Corp")},
				{name: "include_deleted", req: list("include_deleted=true"), check: want(append([]string{"deleted:G-9"}, newestFirst...)...)},
				{name: "include_deleted false", req: list("include_deleted=false"), check: want(newestFirst...)},
				{name: "changes since, for sync", req: list("updated_after=" + ts(sec(10)) + "&include_deleted=true&sort=updated_at"),
					check: want("Initech", "deleted:G-9")},
				{name: "tombstones filter by stored fields", req: list("include_deleted=true&industry=Software&q=inc"),
					check: want("deleted:G-9")},
			}},
			{http.StatusBadRequest, []scenario{
				{name: "unknown sort", req: list("sort=name"), msg: []string{"sort", "-created_at"}},
				{name: "empty sort", req: list("sort="), msg: []string{"sort"}},
				{name: "garbage cursor", req: list("cursor=garbage!"), msg: []string{"cursor"}},
				{name: "empty cursor", req: list("cursor="), msg: []string{"cursor"}},
				{name: "cursor of another shape", req: list("cursor=" + cursorOf(`{"s":"name","t":1,"i":"x"}`)), msg: []string{"cursor"}},
				{name: "cursor with an operator", req: list("cursor=" + cursorOf(`{"s":"created_at","t":1,"i":{"$gt":""}}`)), msg: []string{"cursor"}},
				{name: "huge cursor", req: list("cursor=" + strings.Repeat("A", 5000)), msg: []string{"cursor"}},
				{name: "bad created_after", req: list("created_after=yesterday"), msg: []string{"created_after", "RFC 3339"}},
				{name: "bad created_before", req: list("created_before=2025-13-01T00:00:00Z"), msg: []string{"created_before"}},
				{name: "unix updated_after", req: list("updated_after=1700000000"), msg: []string{"updated_after"}},
				{name: "empty updated_before", req: list("updated_before="), msg: []string{"updated_before"}},
				{name: "date only", req: list("created_after=2025-01-01"), msg: []string{"created_after"}},
				{name: "window backwards", req: list("created_after=" + ts(sec(5)) + "&created_before=" + ts(sec(2))), msg: []string{"created_after"}},
				{name: "include_deleted yes", req: list("include_deleted=yes"), msg: []string{"include_deleted", "true or false"}},
				{name: "include_deleted 1", req: list("include_deleted=1"), msg: []string{"include_deleted"}},
				{name: "not a filter", req: list("name=Acme"), msg: []string{`"name"`, "Unknown query parameter", "industry"}},
				{name: "website is not a filter", req: list("website=x"), msg: []string{"website"}},
				{name: "empty filter", req: list("industry="), msg: []string{"industry"}},
				{name: "repeated filter", req: list("industry=a&industry=b"), msg: []string{"industry", "once"}},
				{name: "operator bracket on q", req: list("q[$regex]=.*"), msg: []string{"q[$regex]"}},
				{name: "q too long", req: list("q=" + strings.Repeat("x", 201)), msg: []string{"q"}},
				{name: "email filter malformed", req: list("email=not-an-email"), msg: []string{"email"}},
			}},
		})

		t.Run("other resources' filters", func(t *testing.T) {
			run(t, e, []group{
				{http.StatusOK, []scenario{
					{name: "activity type any case", req: request{method: http.MethodGet, path: "/api/v1/activities?type=call", key: e.keyA}},
					{name: "deal currency any case", req: request{method: http.MethodGet, path: "/api/v1/deals?currency=eur", key: e.keyA}},
				}},
				{http.StatusBadRequest, []scenario{
					{name: "malformed reference", req: request{method: http.MethodGet, path: "/api/v1/contacts?account_id=123", key: e.keyA}, msg: []string{"account_id"}},
					{name: "unknown enum", req: request{method: http.MethodGet, path: "/api/v1/activities?type=Lunch", key: e.keyA}, msg: []string{"type"}},
					{name: "deal value is not a filter", req: request{method: http.MethodGet, path: "/api/v1/deals?value=1", key: e.keyA}, msg: []string{"value"}},
				}},
			})
		})

		t.Run("cursor walks", func(t *testing.T) {
			for _, tc := range []struct {
				query string
				limit int
				want  []string
			}{
				{"sort=created_at", 4, oldestFirst},
				{"", 3, newestFirst},
				{"sort=-updated_at", 2, append([]string{"Initech"}, newestFirst[1:]...)},
				{"sort=updated_at&include_deleted=true", 4, append(slices.Clone(oldestFirst[:8]), "Initech", "deleted:G-9")},
				{"industry=Software", 1, []string{"Initech", "Globex", "Acme Corp"}},
				{"q=a&created_after=" + ts(sec(0)), 2, []string{`Back\slash Co`, "Dot.Star (.*) Inc", "acme labs"}},
			} {
				t.Run(tc.query, func(t *testing.T) {
					got := walk(t, e, "/api/v1/accounts", tc.query, tc.limit, func(p page) []string { return names(p) })
					if !slices.Equal(got, tc.want) {
						t.Errorf("got  %q\nwant %q", got, tc.want)
					}
				})
			}
		})

		t.Run("cursor rules", func(t *testing.T) {
			r := e.do(t, list("sort=created_at&limit=2"))
			c := decodePage(t, r).Pagination.NextCursor
			if c == nil {
				t.Fatal("no next_cursor")
			}
			cur := url.QueryEscape(*c)
			run(t, e, []group{
				{http.StatusOK, []scenario{
					{name: "cursor alone keeps its sort", req: list("limit=2&cursor=" + cur), check: want("Globex", "100% Pure")},
					{name: "cursor with its sort", req: list("limit=2&sort=created_at&cursor=" + cur), check: want("Globex", "100% Pure")},
					{name: "cursor with offset 0", req: list("limit=2&offset=0&cursor=" + cur), check: want("Globex", "100% Pure")},
				}},
				{http.StatusBadRequest, []scenario{
					{name: "cursor with another sort", req: list("sort=-created_at&cursor=" + cur), msg: []string{"sort", "created_at"}},
					{name: "cursor with offset", req: list("offset=1&cursor=" + cur), msg: []string{"offset", "cursor"}},
					{name: "cursor tampered", req: list("cursor=" + cur[:len(cur)-3]), msg: []string{"cursor"}},
				}},
			})
		})
	})
}

// walk pages through a list with cursors and returns what show says about
// every page, in order. It fails on a page without data that claims more,
// and bounds the walk.
func walk(t *testing.T, e *env, path, query string, limit int, show func(page) []string) []string {
	t.Helper()
	var out []string
	q := fmt.Sprintf("limit=%d", limit)
	if query != "" {
		q += "&" + query
	}
	for range 1000 {
		r := e.do(t, request{method: http.MethodGet, path: path + "?" + q, key: e.keyA})
		if r.status != http.StatusOK {
			t.Fatalf("GET %s?%s: %d %s", path, q, r.status, clip(r.body))
		}
		p := decodePage(t, r)
		out = append(out, show(p)...)
		if p.Pagination.NextCursor == nil {
			if p.Pagination.HasMore {
				t.Fatal("has_more without next_cursor")
			}
			return out
		}
		if len(p.Data) != limit {
			t.Fatalf("a page of %d records, limit %d, with a next_cursor", len(p.Data), limit)
		}
		q = fmt.Sprintf("limit=%d&cursor=%s", limit, url.QueryEscape(*p.Pagination.NextCursor))
		if query != "" {
			q += "&" + query
		}
	}
	t.Fatal("more than 1000 pages")
	return nil
}

// TestEveryFilter filters every resource by each of its documented filters:
// of two records differing only in that field, the list shows the one with
// the value asked for.
func TestEveryFilter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t))
		targets := map[string][2]string{}
		for _, r := range store.Resources {
			targets[r.Name] = [2]string{e.create(e.keyA, r, minimalBody(r)).ID, e.create(e.keyA, r, minimalBody(r)).ID}
		}
		for _, r := range store.Resources {
			for _, name := range r.FilterNames() {
				t.Run(r.Name+"/"+name, func(t *testing.T) {
					f, _ := r.Field(name)
					vals := [2]any{"alpha-" + name, "beta-" + name}
					switch f.Type {
					case store.FieldEmail:
						vals = [2]any{"alpha-" + name + "@example.com", "beta-" + name + "@example.com"}
					case store.FieldEnum:
						vals = [2]any{f.Enum[1], f.Enum[2]}
					case store.FieldCurrency:
						vals = [2]any{"CHF", "JPY"}
					case store.FieldRef:
						vals = [2]any{targets[f.Ref][0], targets[f.Ref][1]}
					}
					var ids [2]string
					for i, v := range vals {
						body := minimalBody(r)
						body[name] = v
						ids[i] = e.create(e.keyA, r, body).ID
					}
					r1 := e.do(t, request{method: http.MethodGet, key: e.keyA,
						path: "/api/v1/" + r.Name + "?limit=200&" + name + "=" + url.QueryEscape(fmt.Sprint(vals[0]))})
					if r1.status != http.StatusOK {
						t.Fatalf("status %d: %s", r1.status, clip(r1.body))
					}
					p := decodePage(t, r1)
					if !slices.Contains(p.ids(), ids[0]) || slices.Contains(p.ids(), ids[1]) {
						t.Errorf("filter %s=%v lists %v; want %s and not %s", name, vals[0], p.ids(), ids[0], ids[1])
					}
					for _, d := range p.Data {
						if d[name] != vals[0] {
							t.Errorf("filter %s=%v lists a record with %v", name, vals[0], d[name])
						}
					}
				})
			}
		}
	})
}

// TestCursorUnderInserts pages through a list by cursor while records are
// being created, both concurrently and, deterministically, between pages:
// every record that existed before the walk is seen exactly once, in order,
// in both directions; a record created between pages (newer than any seen)
// is seen exactly once when walking oldest first and never when walking
// newest first; none is seen twice.
func TestCursorUnderInserts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, open func(t *testing.T) store.Backend) {
		e := newEnv(t, open(t))
		const seeded, inserted, limit = 60, 40, 7
		before := map[string]bool{}
		for i := range seeded {
			before[e.create(e.keyA, store.Notes, map[string]any{"content": fmt.Sprintf("seed %d", i)}).ID] = true
		}
		sa := e.scoped(e.keyA)
		for _, sortOrder := range []string{"-created_at", "created_at"} {
			t.Run(sortOrder, func(t *testing.T) {
				var (
					wg      sync.WaitGroup
					err     error
					created []string
					start   = make(chan struct{})
				)
				wg.Go(func() {
					<-start
					for i := range inserted {
						var rec *store.Record
						rec, err = sa.CreateRecord(t.Context(), store.Notes, map[string]any{"content": fmt.Sprintf("during %d", i)})
						if err != nil {
							return
						}
						created = append(created, rec.ID)
					}
				})
				var times, between []string
				close(start)
				seen := walk(t, e, "/api/v1/notes", "sort="+sortOrder, limit, func(p page) []string {
					for _, d := range p.Data {
						times = append(times, fmt.Sprint(d["created_at"], "/", d["id"]))
					}
					if p.Pagination.NextCursor != nil { // another page follows
						for i := range 2 {
							between = append(between, e.create(e.keyA, store.Notes, map[string]any{"content": fmt.Sprintf("between %d", i)}).ID)
						}
					}
					return p.ids()
				})
				wg.Wait()
				if err != nil {
					t.Fatalf("insert: %v", err)
				}
				counts := map[string]int{}
				for _, id := range seen {
					counts[id]++
					if counts[id] == 2 {
						t.Errorf("record %s seen twice", id)
					}
				}
				for id := range before {
					if counts[id] != 1 {
						t.Errorf("record %s that existed before seen %d times", id, counts[id])
					}
				}
				want := 0
				if sortOrder == "created_at" {
					want = 1
				}
				for _, id := range between {
					if counts[id] != want {
						t.Errorf("record %s created between pages seen %d times, want %d", id, counts[id], want)
					}
				}
				// created_at and id in the list's order, strictly.
				for i := 1; i < len(times); i++ {
					a, b := times[i-1], times[i]
					if (sortOrder == "created_at") != (a < b) || a == b {
						t.Fatalf("out of order at %d: %s then %s", i, a, b)
					}
				}
				for _, id := range slices.Concat(created, between) {
					before[id] = true // the next walk must see these too
				}
			})
		}
	})
}
