package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/store"
)

// The deep pagination part of `hustack bench` (--deep N): a workspace of N
// accounts, and the first page of its list against the page at depth
// N-50, reached by cursor and by offset.
const (
	// benchMinDeep leaves room for a page before the deep one.
	benchMinDeep = 2 * benchPageSize
	// benchMaxDeep bounds the seeding: a million accounts take about half
	// a gigabyte of disk.
	benchMaxDeep = 5_000_000
	// benchDeepWriters write the accounts concurrently: SQLite takes one
	// write at a time, and the others validate and encode meanwhile.
	benchDeepWriters = 4
	// benchDeepProgress is how often seeding and walking report progress.
	benchDeepProgress = 10 * time.Second
	// benchDeepOffsetRounds bounds the requests of scenario 6c per client.
	benchDeepOffsetRounds = 5
	// benchDeepRequestTimeout bounds one request of the walk and the checks.
	benchDeepRequestTimeout = time.Minute
)

// deepResult is what the deep pagination part prints besides its
// scenarios.
type deepResult struct {
	Accounts int `json:"accounts"`
	// Depth is the number of records before the measured deep page: the
	// page holds the last benchPageSize accounts of the default order.
	Depth         int     `json:"depth"`
	SeedSeconds   float64 `json:"seed_seconds"`
	SeedPerSecond float64 `json:"seed_per_second"`
	SeedWriters   int     `json:"seed_writers"`
	// The cursor of the deep page is the next_cursor of a walk through
	// the list by cursor, WalkPages requests of up to WalkLimit records.
	WalkPages   int     `json:"walk_pages"`
	WalkLimit   int     `json:"walk_limit"`
	WalkSeconds float64 `json:"walk_seconds"`
	// SamePage reports whether the deep page by cursor and by offset hold
	// the same records in the same order.
	SamePage bool   `json:"same_page"`
	Mismatch string `json:"mismatch,omitempty"`
}

// deepSelected reports whether any deep scenario is to run.
func (o *benchOptions) deepSelected() bool {
	if o.deep == 0 {
		return false
	}
	if o.only == nil {
		return true
	}
	return slices.ContainsFunc(deepScenarioIDs, func(id string) bool { return o.only[id] })
}

// runDeep seeds a workspace of o.deep accounts in the store of the server
// at root, walks its list by cursor to the deep page, checks that cursor
// and offset reach the same page, and measures the three list scenarios
// with br. The walk's responses count as usage-logging responses. It
// returns the key of the deep workspace, for the events check.
func runDeep(ctx context.Context, br *benchRunner, svc *store.Service, root string, progress io.Writer) (
	res *deepResult, scenarios []scenarioResult, rawKey string, err error) {
	n := br.o.deep
	res = &deepResult{Accounts: n, Depth: n - benchPageSize, SeedWriters: min(benchDeepWriters, 2*runtime.GOMAXPROCS(0)),
		WalkLimit: store.MaxLimit}
	rawKey, sc, err := benchWorkspace(ctx, svc, "Bench deep pagination")
	if err != nil {
		return nil, nil, "", err
	}
	start := time.Now()
	if err := seedDeep(ctx, sc, n, res.SeedWriters, progress); err != nil {
		return nil, nil, "", err
	}
	seeded := time.Since(start)
	res.SeedSeconds = math.Round(seeded.Seconds()*1000) / 1000
	res.SeedPerSecond = math.Round(float64(n) / seeded.Seconds())

	cl := &deepClient{hc: br.hc, root: root, key: rawKey, responses: &br.responses}
	start = time.Now()
	cursor, pages, err := cl.walk(ctx, res.Depth, progress)
	if err != nil {
		return nil, nil, "", err
	}
	res.WalkPages = pages
	res.WalkSeconds = math.Round(time.Since(start).Seconds()*1000) / 1000

	first := fmt.Sprintf("%s/accounts?limit=%d", api.APIPrefix, benchPageSize)
	byCursor := first + "&cursor=" + url.QueryEscape(cursor)
	byOffset := first + "&offset=" + strconv.Itoa(res.Depth)
	a, err := cl.page(ctx, byCursor)
	if err != nil {
		return nil, nil, "", err
	}
	b, err := cl.page(ctx, byOffset)
	if err != nil {
		return nil, nil, "", err
	}
	res.SamePage = slices.Equal(a.ids(), b.ids()) && len(a.Data) == benchPageSize
	if !res.SamePage {
		res.Mismatch = fmt.Sprintf("by cursor: %d records %v; by offset: %d records %v", len(a.Data), a.ids(), len(b.Data), b.ids())
	}

	targets := deepTargets(root, rawKey, n, res.Depth, byCursor, byOffset, br.o.concurrency)
	scenarios, err = br.runAll(ctx, targets, nil)
	if err != nil {
		return nil, nil, "", err
	}
	return res, scenarios, rawKey, nil
}

// deepTargets are the three requests of the deep part, on the API with
// usage logging, as scenario 3on.
func deepTargets(root, key string, n, depth int, byCursor, byOffset string, concurrency int) []*benchTarget {
	h := http.Header{"Authorization": {"Bearer " + key}, "User-Agent": {"hustack-bench"}}
	first := fmt.Sprintf("%s/accounts?limit=%d", api.APIPrefix, benchPageSize)
	target := func(id, name, path, display string) *benchTarget {
		return &benchTarget{id: id, name: name, method: http.MethodGet, url: root + path, display: "GET " + display,
			header: h, expect: http.StatusOK, check: checkListPage(benchPageSize), usage: true}
	}
	// An offset reads every row before the page: a request is long and
	// CPU-bound, so it runs with one client per CPU (more would only
	// queue, and could outwait the client's timeout), without a warm-up,
	// for at most benchDeepOffsetRounds requests per client.
	clients := min(concurrency, runtime.GOMAXPROCS(0))
	offset := target(scenDeepOffset, fmt.Sprintf("deep: page at depth %d by offset, %d clients", depth, clients), byOffset,
		fmt.Sprintf("%s&offset=%d", first, depth))
	offset.noWarmup = true
	offset.concurrency = clients
	offset.maxRequests = int64(benchDeepOffsetRounds * clients)
	return []*benchTarget{
		target(scenDeepFirst, fmt.Sprintf("deep: first page of %d accounts", n), first, first),
		target(scenDeepCursor, fmt.Sprintf("deep: page at depth %d by cursor", depth), byCursor,
			fmt.Sprintf("%s&cursor=(depth %d)", first, depth)),
		offset,
	}
}

// benchWorkspace creates a workspace and a key with every scope and the
// bench's rate limit.
func benchWorkspace(ctx context.Context, svc *store.Service, name string) (rawKey string, sc *store.Scoped, err error) {
	ws, err := svc.CreateWorkspace(ctx, name)
	if err != nil {
		return "", nil, fmt.Errorf("bench: create workspace: %w", err)
	}
	rl := benchRateLimit
	_, rawKey, err = svc.CreateAPIKey(ctx, store.KeyInput{WorkspaceID: ws.ID, Name: "bench", Scopes: store.AllScopes(), RateLimit: &rl})
	if err != nil {
		return "", nil, fmt.Errorf("bench: create key: %w", err)
	}
	p, err := svc.Authenticate(ctx, rawKey)
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	return rawKey, svc.Scoped(p), nil
}

// seedDeep creates n accounts through sc, as the API would, from writers
// goroutines.
func seedDeep(ctx context.Context, sc *store.Scoped, n, writers int, progress io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	industries := []string{"Software", "Retail", "Manufacturing", "Finance", "Health", "Energy", "Media", "Logistics"}
	countries := []string{"DE", "US", "FR", "GB", "JP", "BR", "IN", "AT", "CH", "NL"}
	var (
		next    atomic.Int64
		errOnce sync.Once
		firstEr error
		wg      sync.WaitGroup
	)
	done := make(chan struct{})
	go reportProgress(done, progress, fmt.Sprintf("bench: seeding %d accounts", n), func() int64 { return min(next.Load(), int64(n)) })
	for range writers {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				_, err := sc.CreateRecord(ctx, store.Accounts, map[string]any{
					"name":     fmt.Sprintf("Deep account %07d", i),
					"industry": industries[i%len(industries)],
					"country":  countries[i%len(countries)],
					"website":  fmt.Sprintf("https://account-%d.example.com", i),
					"email":    fmt.Sprintf("sales%d@example.com", i),
				})
				if err != nil {
					errOnce.Do(func() { firstEr = err })
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	close(done)
	if firstEr != nil {
		return fmt.Errorf("bench: seed deep accounts: %w", firstEr)
	}
	return ctx.Err()
}

// reportProgress writes what count says every benchDeepProgress until done
// is closed.
func reportProgress(done <-chan struct{}, w io.Writer, what string, count func() int64) {
	t := time.NewTicker(benchDeepProgress)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			fmt.Fprintf(w, "%s: %d so far\n", what, count())
		}
	}
}

// deepClient reads pages of the deep workspace's accounts.
type deepClient struct {
	hc        *http.Client
	root, key string
	responses *atomic.Uint64 // responses of usage-logging routes
}

// listPage is the part of a list response the deep part reads.
type listPage struct {
	Data []struct {
		ID string `json:"id"`
	} `json:"data"`
	Pagination struct {
		NextCursor *string `json:"next_cursor"`
	} `json:"pagination"`
}

func (p *listPage) ids() []string {
	out := make([]string, len(p.Data))
	for i, r := range p.Data {
		out[i] = r.ID
	}
	return out
}

// page fetches one page of accounts (path below the server's root).
func (cl *deepClient) page(ctx context.Context, path string) (*listPage, error) {
	ctx, cancel := context.WithTimeout(ctx, benchDeepRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.root+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cl.key)
	req.Header.Set("User-Agent", "hustack-bench")
	resp, err := cl.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	cl.responses.Add(1)
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorBody
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return nil, fmt.Errorf("bench: GET %s: status %d: %s %s", path, resp.StatusCode, e.Error, e.Message)
	}
	var p listPage
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return nil, fmt.Errorf("bench: GET %s: %w", path, err)
	}
	return &p, nil
}

// walk pages through the accounts in the default order by cursor, with
// pages of store.MaxLimit, and returns the next_cursor after exactly depth
// records: the cursor of the page at that depth. The API's cursors are
// opaque, so walking is the only way to one.
func (cl *deepClient) walk(ctx context.Context, depth int, progress io.Writer) (cursor string, pages int, err error) {
	var seen atomic.Int64
	done := make(chan struct{})
	defer close(done)
	go reportProgress(done, progress, fmt.Sprintf("bench: walking to depth %d by cursor", depth), seen.Load)
	maxPages := depth/store.MaxLimit + 2
	for pages < maxPages {
		limit := min(store.MaxLimit, depth-int(seen.Load()))
		path := fmt.Sprintf("%s/accounts?limit=%d", api.APIPrefix, limit)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		p, err := cl.page(ctx, path)
		if err != nil {
			return "", pages, err
		}
		pages++
		got := seen.Add(int64(len(p.Data)))
		if p.Pagination.NextCursor == nil {
			return "", pages, fmt.Errorf("bench: the list of accounts ended after %d records, before depth %d", got, depth)
		}
		cursor = *p.Pagination.NextCursor
		if got == int64(depth) {
			return cursor, pages, nil
		}
	}
	return "", pages, fmt.Errorf("bench: depth %d not reached in %d pages", depth, maxPages)
}

// deepNote explains the deep pagination part in the report.
func deepNote() string {
	return fmt.Sprintf("6a, 6b and 6c list a separate workspace of --deep accounts, created through the store as the "+
		"API creates them, on the API with usage logging. The cursor of 6b is the next_cursor of one walk through the "+
		"list by cursor (the API's cursors are opaque); 6b and 6c ask for the same page, the last %d accounts of the "+
		"default order (-created_at), and the bench checks that they hold the same records. An offset reads every row "+
		"before its page: 6c runs one client per CPU (more would only queue), without a warm-up, for at most %d "+
		"requests per client; compare it by CPU µs/req, which does not depend on the number of clients.",
		benchPageSize, benchDeepOffsetRounds)
}
