package mcp_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/hustack/hustack/store"
)

// BenchmarkListAccounts compares tools/call list_accounts over Streamable
// HTTP (protocol 2026-07-28, one POST per call) with GET /api/v1/accounts
// over REST: same server, same data, same page size.
//
//	go test ./mcp -run '^$' -bench ListAccounts -cpu 8
func BenchmarkListAccounts(b *testing.B) {
	e := newBenchEnv(b)
	key := e.keys[keyFull]
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_accounts","arguments":{"limit":50},` +
		`"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"bench","version":"1"},` +
		`"io.modelcontextprotocol/clientCapabilities":{}}}}`)

	run := func(b *testing.B, newReq func() *http.Request) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := hc.Do(newReq())
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
	}
	b.Run("REST", func(b *testing.B) {
		run(b, func() *http.Request {
			req, _ := http.NewRequest(http.MethodGet, e.restURL()+"/accounts?limit=50", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			return req
		})
	})
	b.Run("MCP", func(b *testing.B) {
		run(b, func() *http.Request {
			req, _ := http.NewRequest(http.MethodPost, e.mcpURL(), bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2026-07-28")
			req.Header.Set("Mcp-Method", "tools/call")
			req.Header.Set("Mcp-Name", "list_accounts")
			return req
		})
	})
}

func newBenchEnv(b *testing.B) *env {
	b.Helper()
	e := newEnv(b)
	p, err := e.svc.Authenticate(b.Context(), e.keys[keyFull])
	if err != nil {
		b.Fatal(err)
	}
	sc := e.svc.Scoped(p)
	for i := range 100 {
		if _, err := sc.CreateRecord(b.Context(), store.Accounts, map[string]any{"name": fmt.Sprintf("Account %d", i), "industry": "Tools"}); err != nil {
			b.Fatal(err)
		}
	}
	return e
}
