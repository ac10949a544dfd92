package api_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/hustack/hustack/api"
	"github.com/hustack/hustack/api/console"
)

// TestConsoleMount checks that the console is served without a key, with
// its own Content-Security-Policy, and that every response of the server,
// console, documentation and API alike, carries the security headers.
func TestConsoleMount(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	root := strings.TrimSuffix(api.ConsolePath, "/")

	t.Run("redirect", func(t *testing.T) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.srv.URL+root, nil)
		if err != nil {
			t.Fatal(err)
		}
		client := *e.srv.Client()
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != api.ConsolePath {
			t.Errorf("GET %s: %d, Location %q", root, resp.StatusCode, resp.Header.Get("Location"))
		}
	})

	page := e.do(t, request{method: http.MethodGet, path: api.ConsolePath})
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: %d %q", api.ConsolePath, page.status, page.header.Get("Content-Type"))
	}
	// No inline script: every script element loads a file.
	for _, tag := range regexp.MustCompile(`(?i)<script[^>]*>`).FindAllString(string(page.body), -1) {
		if !strings.Contains(tag, "src=") {
			t.Errorf("inline script in the console page: %s", tag)
		}
	}

	csp := map[string]string{
		api.ConsolePath: console.CSP, api.DocsPath: "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	}
	for _, rq := range []request{
		{method: "GET", path: api.ConsolePath},
		{method: "GET", path: api.ConsolePath + "app.js"},
		{method: "GET", path: api.ConsolePath + "missing.js"},
		{method: "GET", path: api.DocsPath},
		{method: "GET", path: api.KeysPath, key: e.keyA},
		{method: "POST", path: api.KeysPath, key: e.keyA, body: jsonBody(`{"name":"x","scopes":["read:leads"]}`)},
		{method: "GET", path: api.KeyPolicyPath},
		{method: "POST", path: api.ConsolePath},
	} {
		r := e.do(t, rq)
		h := r.header
		if rq.method == "GET" && strings.HasPrefix(rq.path, api.ConsolePath) && !strings.HasSuffix(rq.path, "missing.js") && r.status != http.StatusOK {
			t.Errorf("%s %s: %d", rq.method, rq.path, r.status)
		}
		for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
			if h.Get(k) != v {
				t.Errorf("%s %s: %s = %q, want %q", rq.method, rq.path, k, h.Get(k), v)
			}
		}
		policy := h.Get("Content-Security-Policy")
		want, ok := csp[rq.path]
		switch {
		case ok && rq.method == "GET" && policy != want:
			t.Errorf("%s %s: CSP %q, want %q", rq.method, rq.path, policy, want)
		case policy == "" || strings.Contains(policy, "unsafe-inline") || strings.Contains(policy, "unsafe-eval") || !strings.Contains(policy, "frame-ancestors 'none'"):
			t.Errorf("%s %s: CSP %q", rq.method, rq.path, policy)
		}
	}
}
