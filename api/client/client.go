// Package client is a small typed client for the Hustack REST API.
//
// Its methods mirror the operations of store.Scoped, so code written against
// those operations (the MCP tools, for one) can run in process or against a
// remote Hustack server. Error responses come back as *store.Error with the
// code and message the server sent, so callers see the same errors either way.
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

// FindRecords lists records of resource r, newest first.
func (c *Client) FindRecords(ctx context.Context, r *store.Resource, lp store.ListParams) (store.Page[*store.Record], error) {
	q := url.Values{}
	setListParams(q, lp)
	var raw struct {
		Data       []json.RawMessage `json:"data"`
		Pagination store.Pagination  `json:"pagination"`
	}
	if err := c.do(ctx, http.MethodGet, "/"+r.Name, q, nil, &raw); err != nil {
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
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodGet, "/"+r.Name+"/"+url.PathEscape(id), nil, nil, &raw); err != nil {
		return nil, err
	}
	return decodeRecord(r, raw)
}

// CreateRecord creates a record of resource r from the given field values.
func (c *Client) CreateRecord(ctx context.Context, r *store.Resource, input map[string]any) (*store.Record, error) {
	if input == nil {
		input = map[string]any{}
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/"+r.Name, nil, input, &raw); err != nil {
		return nil, err
	}
	return decodeRecord(r, raw)
}

// Whoami describes the calling key: its workspace, name, scopes and expiry.
func (c *Client) Whoami(ctx context.Context) (*store.Me, error) {
	var me store.Me
	if err := c.do(ctx, http.MethodGet, "/me", nil, nil, &me); err != nil {
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
	if err := c.do(ctx, http.MethodGet, "/usage", q, nil, &out); err != nil {
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
	if err := c.do(ctx, http.MethodGet, "/usage/logs", q, nil, &page); err != nil {
		return store.Page[store.UsageEvent]{}, err
	}
	if page.Data == nil {
		page.Data = []store.UsageEvent{}
	}
	return page, nil
}

func setListParams(q url.Values, lp store.ListParams) {
	q.Set("limit", strconv.Itoa(lp.Limit))
	q.Set("offset", strconv.Itoa(lp.Offset))
}

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

// do sends one request and decodes a 2xx answer into out. Any other answer
// becomes an error wrapping the *store.Error the server described.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("hustack client: encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("hustack client: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// The key is only in a header, never in the URL, so the error text
		// (which names the URL) is safe to log.
		return fmt.Errorf("hustack client: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("hustack client: %s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &ResponseError{Method: method, Path: path, Status: resp.StatusCode,
			RequestID: resp.Header.Get("X-Request-Id"), Err: errorFromBody(resp.StatusCode, data)}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("hustack client: %s %s: decode response: %w", method, path, err)
	}
	return nil
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
