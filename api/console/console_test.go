package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/hustack/hustack/api/console"
)

// mounted serves the console under console.Path, as the API does.
func mounted() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(console.Path, console.Handler())
	mux.Handle(strings.TrimSuffix(console.Path, "/"), console.Handler())
	return mux
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func checkSecurityHeaders(t *testing.T, res *http.Response) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": console.CSP,
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-cache",
	}
	for k, v := range want {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "*", "http:", "https:"} {
		if strings.Contains(csp, bad) {
			t.Errorf("CSP %q allows %s", csp, bad)
		}
	}
}

func TestServesFiles(t *testing.T) {
	h := mounted()
	for _, tc := range []struct {
		target, contentType, contains string
	}{
		{"/console/", "text/html; charset=utf-8", "Settings → Integrations → API Keys"},
		{"/console/index.html", "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"/console/app.js", "text/javascript; charset=utf-8", "import { api"},
		{"/console/api.js", "text/javascript; charset=utf-8", "sessionStorage"},
		{"/console/chart.js", "text/javascript; charset=utf-8", "createElementNS"},
		{"/console/console.css", "text/css; charset=utf-8", ".badge"},
		{"/console/icon.svg", "image/svg+xml", "<svg"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			res := get(t, h, http.MethodGet, tc.target, nil)
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d, body %q", res.StatusCode, body)
			}
			if got := res.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if !strings.Contains(string(body), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			if res.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			checkSecurityHeaders(t, res)
		})
	}
}

func TestStrippedMount(t *testing.T) {
	// Mounted behind http.StripPrefix the handler serves the same files.
	h := http.StripPrefix("/console", console.Handler())
	for target, ct := range map[string]string{"/console/": "text/html; charset=utf-8", "/console/app.js": "text/javascript; charset=utf-8"} {
		res := get(t, h, http.MethodGet, target, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != ct {
			t.Errorf("%s: status %d, Content-Type %q", target, res.StatusCode, res.Header.Get("Content-Type"))
		}
	}
}

func TestNotFoundRedirectAndMethods(t *testing.T) {
	h := mounted()

	res := get(t, h, http.MethodGet, "/console/nope.js", nil)
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: status %d, want 404", res.StatusCode)
	}
	checkSecurityHeaders(t, res)

	res = get(t, h, http.MethodGet, "/console", nil)
	if res.StatusCode != http.StatusPermanentRedirect || res.Header.Get("Location") != console.Path {
		t.Errorf("/console: status %d, Location %q; want 308 to %s", res.StatusCode, res.Header.Get("Location"), console.Path)
	}

	res = get(t, h, http.MethodPost, "/console/", nil)
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: status %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}

	res = get(t, h, http.MethodHead, "/console/app.js", nil)
	if res.StatusCode != http.StatusOK {
		t.Errorf("HEAD: status %d", res.StatusCode)
	}

	first := get(t, h, http.MethodGet, "/console/app.js", nil)
	etag := first.Header.Get("ETag")
	res = get(t, h, http.MethodGet, "/console/app.js", map[string]string{"If-None-Match": etag})
	if res.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: status %d, want 304", etag, res.StatusCode)
	}
}

// readStatic returns every file the handler serves, by name, as fetched
// through it.
func readStatic(t *testing.T) map[string]string {
	t.Helper()
	h := mounted()
	out := map[string]string{}
	// The HTML pages name the other files; fetch index.html and follow.
	queue := []string{"index.html"}
	for len(queue) > 0 && len(out) < 50 {
		name := queue[0]
		queue = queue[1:]
		if _, seen := out[name]; seen {
			continue
		}
		res := get(t, h, http.MethodGet, console.Path+name, nil)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("%s is referenced but answers %d", name, res.StatusCode)
		}
		out[name] = string(body)
		switch path.Ext(name) {
		case ".html":
			queue = append(queue, htmlRefs(t, string(body))...)
		case ".js":
			for _, m := range jsImport.FindAllStringSubmatch(string(body), -1) {
				queue = append(queue, strings.TrimPrefix(m[1], "./"))
			}
		}
	}
	return out
}

var jsImport = regexp.MustCompile(`(?m)^\s*import\s[^;]*?from\s+"([^"]+)"`)

// htmlRefs lists the local files an HTML page loads.
func htmlRefs(t *testing.T, doc string) []string {
	t.Helper()
	var refs []string
	z := html.NewTokenizer(strings.NewReader(doc))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return refs
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			for _, a := range tok.Attr {
				if (a.Key == "src" || (a.Key == "href" && tok.Data == "link")) && !strings.HasPrefix(a.Val, "data:") {
					if strings.Contains(a.Val, "//") || strings.HasPrefix(a.Val, "/") {
						t.Errorf("<%s %s=%q>: only files of the console, by relative URL", tok.Data, a.Key, a.Val)
						continue
					}
					refs = append(refs, a.Val)
				}
			}
		}
	}
}

func TestNoInlineScriptOrHandlers(t *testing.T) {
	served := readStatic(t)
	pages := 0
	for name, body := range served {
		if path.Ext(name) != ".html" {
			continue
		}
		pages++
		z := html.NewTokenizer(strings.NewReader(body))
		inScript := false
		for done := false; !done; {
			switch z.Next() {
			case html.ErrorToken:
				done = true
			case html.StartTagToken, html.SelfClosingTagToken:
				tok := z.Token()
				hasSrc := false
				for _, a := range tok.Attr {
					key := strings.ToLower(a.Key)
					if strings.HasPrefix(key, "on") {
						t.Errorf("%s: <%s %s=...>: inline event handler", name, tok.Data, a.Key)
					}
					if key == "style" {
						t.Errorf("%s: <%s style=...>: inline style", name, tok.Data)
					}
					if (key == "href" || key == "src" || key == "action") && strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "javascript:") {
						t.Errorf("%s: <%s %s=%q>: javascript: URL", name, tok.Data, a.Key, a.Val)
					}
					if key == "src" {
						hasSrc = true
					}
				}
				switch tok.Data {
				case "script":
					if !hasSrc {
						t.Errorf("%s: <script> without src", name)
					}
					inScript = true
				case "style":
					t.Errorf("%s: inline <style> element", name)
				}
			case html.TextToken:
				if inScript && strings.TrimSpace(string(z.Text())) != "" {
					t.Errorf("%s: inline script text", name)
				}
			case html.EndTagToken:
				if tok := z.Token(); tok.Data == "script" {
					inScript = false
				}
			}
		}
	}
	if pages == 0 {
		t.Fatal("no HTML page served")
	}
	for name, body := range served {
		if path.Ext(name) != ".js" {
			continue
		}
		for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "localStorage", "document.write"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s uses %s", name, bad)
			}
		}
	}
}

// TestEveryFileReachable: the pages load every file the handler serves, and
// the handler serves every file they load (readStatic fails on a 404).
func TestEveryFileReachable(t *testing.T) {
	served := readStatic(t)
	for _, want := range []string{"index.html", "app.js", "api.js", "chart.js", "console.css", "icon.svg"} {
		if _, ok := served[want]; !ok {
			t.Errorf("%s is not reachable from index.html", want)
		}
	}
}
