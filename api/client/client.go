// Package client is a small typed client for the Hustack REST API.
//
// Its methods mirror the operations of store.Scoped, so code written against
// those operations (the MCP tools, for one) can run in process or against a
// remote Hustack server. Error responses come back as *ResponseError, which
// wraps a *store.Error with the code and message the server sent, so
// store.ErrorCode and store.ErrorMessage see the same errors either way.
//
// Writes made with a context from WithIdempotencyKey carry an Idempotency-Key
// header, so that retrying them after a timeout or a lost connection never
// writes twice.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hustack/hustack/store"
)

// DefaultUserAgent is sent unless WithUserAgent says otherwise.
const DefaultUserAgent = "hustack-client/v1"

// maxResponseBytes bounds how much of a response body is read. The largest
// legitimate answer is a page of 200 records with long text fields.
const maxResponseBytes = 256 << 20

// Client calls one Hustack server with one API key. It is safe for
// concurrent use.
type Client struct {
	base      string // e.g. http://127.0.0.1:8080/api/v1, without a trailing slash
	key       string
	http      *http.Client
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (for timeouts, transports, tests).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithUserAgent sets the User-Agent header sent with every request.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the REST API at baseURL, such as
// "https://hustack.example.com/api/v1", authenticating with key. A base URL
// with no path ("http://127.0.0.1:8080") gets /api/v1 appended.
func New(baseURL, key string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hustack client: base URL %q must be an http or https URL such as http://127.0.0.1:8080/api/v1", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("hustack client: base URL %q must not have a query or fragment", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	if u.Path == "" {
		u.Path = "/api/v1"
	}
	u.RawPath = ""
	c := &Client{base: u.String(), key: key, http: http.DefaultClient, userAgent: DefaultUserAgent}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the REST API's base URL as the client uses it.
func (c *Client) BaseURL() string { return c.base }

// FindRecords lists records of resource r: newest first unless lp.Sort
// says otherwise, filtered and paged as lp says (see store.ListParams).
func (c *Client) FindRecords(ctx context.Context, r *store.Resource, lp store.ListParams) (store.Page[*store.Record], error) {
	q := url.Values{}
	setListParams(q, lp)
	var raw struct {
		Data       []json.RawMessage `json:"data"`
		Pagination store.Pagination  `json:"pagination"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/"+r.Name, q, nil, &raw); err != nil {
		return store.Page[*store.Record]{}, err
	}
	page := store.Page[*store.Record]{Data: make([]*store.Record, 0, len(raw.Data)), Pagination: raw.Pagination}
	for _, d := range raw.Data {
		rec, err := decodeRecord(r, d)
		if err != nil {
			return store.Page[*store.Record]{}, err
		}
		page.Data = append(page.Data, rec)
	}
	return page, nil
}

// FindRecordByID returns one record of resource r.
func (c *Client) FindRecordByID(ctx context.Context, r *store.Resource, id string) (*store.Record, error) {
	rec, _, err := c.doRecord(ctx, http.MethodGet, recordPath(r, id), r, nil)
	return rec, err
}

// CreateRecord creates a record of resource r from the given field values.
func (c *Client) CreateRecord(ctx context.Context, r *store.Resource, input map[string]any) (*store.Record, error) {
	rec, _, err := c.doRecord(ctx, http.MethodPost, "/"+r.Name, r, fieldsBody(input))
	return rec, err
}

// UpdateRecord changes some fields of a record of resource r (PATCH): fields
// in input are set, a nil value clears an optional field, absent fields are
// left alone.
func (c *Client) UpdateRecord(ctx context.Context, r *store.Resource, id string, input map[string]any) (*store.Record, error) {
	rec, _, err := c.doRecord(ctx, http.MethodPatch, recordPath(r, id), r, fieldsBody(input))
	return rec, err
}

// DeleteRecord deletes a record of resource r. The server keeps a tombstone
// that lists show with IncludeDeleted.
func (c *Client) DeleteRecord(ctx context.Context, r *store.Resource, id string) error {
	_, err := c.do(ctx, http.MethodDelete, recordPath(r, id), nil, nil, nil)
	return err
}

// UpsertRecord creates the record of resource r with the given external id
// (created is true) or updates the one that has it (PUT by-external-id).
func (c *Client) UpsertRecord(ctx context.Context, r *store.Resource, externalID string, input map[string]any) (rec *store.Record, created bool, err error) {
	rec, status, err := c.doRecord(ctx, http.MethodPut, "/"+r.Name+"/by-external-id/"+url.PathEscape(externalID), r, fieldsBody(input))
	if err != nil {
		return nil, false, err
	}
	return rec, status == http.StatusCreated, nil
}

// fieldsBody is the body of a single-record write: the field values, {}
// when there are none.
func fieldsBody(input map[string]any) map[string]any {
	if input == nil {
		return map[string]any{}
	}
	return input
}

// doRecord sends a request whose answer is one record of resource r, and
// returns the record and the status.
func (c *Client) doRecord(ctx context.Context, method, path string, r *store.Resource, body any) (*store.Record, int, error) {
	var raw json.RawMessage
	status, err := c.do(ctx, method, path, nil, body, &raw)
	if err != nil {
		return nil, status, err
	}
	rec, err := decodeRecord(r, raw)
	return rec, status, err
}

// CreateRecords creates 1 to store.MaxBatch records of resource r in one
// request, each validated and created independently: one item's failure
// is reported in its result and does not affect the others.
func (c *Client) CreateRecords(ctx context.Context, r *store.Resource, inputs []map[string]any) ([]store.BatchResult, error) {
	return c.batch(ctx, r, "/"+r.Name+"/batch", inputs)
}

// UpsertRecords upserts 1 to store.MaxBatch records of resource r by their
// external_id, independently.
func (c *Client) UpsertRecords(ctx context.Context, r *store.Resource, inputs []map[string]any) ([]store.BatchResult, error) {
	return c.batch(ctx, r, "/"+r.Name+"/batch/upsert", inputs)
}

// batchItem is one entry of a batch response.
type batchItem struct {
	Index  int             `json:"index"`
	Status int             `json:"status"`
	Data   json.RawMessage `json:"data"`
	Error  *struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	} `json:"error"`
}

func (c *Client) batch(ctx context.Context, r *store.Resource, path string, inputs []map[string]any) ([]store.BatchResult, error) {
	if inputs == nil {
		inputs = []map[string]any{} // "records": [], which the server refuses with its own message
	}
	var out struct {
		Results []batchItem `json:"results"`
	}
	if _, err := c.do(ctx, http.MethodPost, path, nil, map[string]any{"records": inputs}, &out); err != nil {
		return nil, err
	}
	if len(out.Results) != len(inputs) {
		return nil, fmt.Errorf("hustack client: POST %s: %d results for %d records", path, len(out.Results), len(inputs))
	}
	results := make([]store.BatchResult, len(out.Results))
	for i, it := range out.Results {
		res := store.BatchResult{Index: it.Index}
		switch {
		case it.Error != nil:
			res.Err = &store.Error{Code: it.Error.Error, Message: it.Error.Message}
		case it.Status >= 200 && it.Status <= 299 && len(it.Data) > 0:
			rec, err := decodeRecord(r, it.Data)
			if err != nil {
				return nil, err
			}
			res.Record, res.Created = rec, it.Status == http.StatusCreated
		default:
			return nil, fmt.Errorf("hustack client: POST %s: result %d has status %d and neither data nor error", path, i, it.Status)
		}
		results[i] = res
	}
	return results, nil
}

// Whoami describes the calling key: its workspace, name, scopes and expiry.
func (c *Client) Whoami(ctx context.Context) (*store.Me, error) {
	var me store.Me
	if _, err := c.do(ctx, http.MethodGet, "/me", nil, nil, &me); err != nil {
		return nil, err
	}
	return &me, nil
}

// CountUsage returns the workspace's request counts grouped by day, key,
// route or status.
func (c *Client) CountUsage(ctx context.Context, uq store.UsageQuery, by store.UsageGroup) ([]store.UsageCount, error) {
	q := url.Values{}
	q.Set("group_by", string(by))
	setUsageQuery(q, uq)
	var out struct {
		Data []store.UsageCount `json:"data"`
	}
	if _, err := c.do(ctx, http.MethodGet, "/usage", q, nil, &out); err != nil {
		return nil, err
	}
	if out.Data == nil {
		out.Data = []store.UsageCount{}
	}
	return out.Data, nil
}

// FindUsageLogs lists the workspace's usage log entries, newest first.
func (c *Client) FindUsageLogs(ctx context.Context, uq store.UsageQuery, lp store.ListParams) (store.Page[store.UsageEvent], error) {
	q := url.Values{}
	setUsageQuery(q, uq)
	setListParams(q, lp)
	var page store.Page[store.UsageEvent]
	if _, err := c.do(ctx, http.MethodGet, "/usage/logs", q, nil, &page); err != nil {
		return store.Page[store.UsageEvent]{}, err
	}
	if page.Data == nil {
		page.Data = []store.UsageEvent{}
	}
	return page, nil
}

// setListParams writes lp as REST query parameters. The record-list
// parameters are only written when set, so usage logs get limit and offset
// only.
func setListParams(q url.Values, lp store.ListParams) {
	q.Set("limit", strconv.Itoa(lp.Limit))
	if lp.Offset != 0 {
		q.Set("offset", strconv.Itoa(lp.Offset))
	}
	if lp.Sort != "" {
		q.Set("sort", lp.Sort)
	}
	if lp.Cursor != "" {
		q.Set("cursor", lp.Cursor)
	}
	for _, t := range []struct {
		name string
		at   time.Time
	}{
		{"created_after", lp.CreatedAfter}, {"created_before", lp.CreatedBefore},
		{"updated_after", lp.UpdatedAfter}, {"updated_before", lp.UpdatedBefore},
	} {
		if !t.at.IsZero() {
			q.Set(t.name, t.at.UTC().Format(time.RFC3339Nano))
		}
	}
	for name, v := range lp.Filters {
		q.Set(name, v)
	}
	if lp.Q != "" {
		q.Set("q", lp.Q)
	}
	if lp.IncludeDeleted {
		q.Set("include_deleted", "true")
	}
}

func recordPath(r *store.Resource, id string) string { return "/" + r.Name + "/" + url.PathEscape(id) }

func setUsageQuery(q url.Values, uq store.UsageQuery) {
	if uq.KeyID != "" {
		q.Set("key_id", uq.KeyID)
	}
	if uq.Status != 0 {
		q.Set("status", strconv.Itoa(uq.Status))
	}
	if !uq.From.IsZero() {
		q.Set("from", uq.From.UTC().Format(time.RFC3339Nano))
	}
	if !uq.To.IsZero() {
		q.Set("to", uq.To.UTC().Format(time.RFC3339Nano))
	}
}

func decodeRecord(r *store.Resource, data json.RawMessage) (*store.Record, error) {
	rec := &store.Record{Resource: r}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("hustack client: decode %s: %w", r.Singular, err)
	}
	return rec, nil
}

// do sends one request and decodes a 2xx answer into out (nil: the answer
// has no body, as for 204). It returns the status. Any other answer becomes
// an error wrapping the *store.Error the server described.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) (int, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("hustack client: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, fmt.Errorf("hustack client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	idem, _ := ctx.Value(idempotencyKey{}).(*idempotency)
	if idem != nil && method != http.MethodGet {
		req.Header.Set(IdempotencyKeyHeader, idem.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The key is only in a header, never in the URL, so the error text
		// (which names the URL) is safe to log.
		return 0, fmt.Errorf("hustack client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if idem != nil && method != http.MethodGet && resp.Header.Get(IdempotentReplayedHeader) == "true" {
		idem.replayed.Store(true)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("hustack client: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, &ResponseError{Method: method, Path: path, Status: resp.StatusCode,
			RequestID: resp.Header.Get("X-Request-Id"), Err: errorFromBody(resp.StatusCode, data)}
	}
	if out == nil {
		return resp.StatusCode, nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return resp.StatusCode, fmt.Errorf("hustack client: %s %s: decode response: %w", method, path, err)
	}
	return resp.StatusCode, nil
}

// ResponseError is an error answer from the server. It wraps the *store.Error
// the body described, so store.ErrorCode and store.ErrorMessage see the
// server's code and message.
type ResponseError struct {
	Method    string
	Path      string
	Status    int
	RequestID string
	Err       *store.Error
}

func (e *ResponseError) Error() string {
	return fmt.Sprintf("hustack client: %s %s: status %d (request %s): %s: %s",
		e.Method, e.Path, e.Status, e.RequestID, e.Err.Code, e.Err.Message)
}

func (e *ResponseError) Unwrap() error { return e.Err }

// errorFromBody reads a {"error": code, "message": text} body. A body of any
// other shape (a proxy's HTML error page, say) becomes an internal error.
func errorFromBody(status int, data []byte) *store.Error {
	var body struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(data, &body); err != nil || body.Error == "" {
		return &store.Error{Code: store.EINTERNAL, Message: fmt.Sprintf("unexpected HTTP status %d without a Hustack error body", status)}
	}
	return &store.Error{Code: body.Error, Message: body.Message}
}
