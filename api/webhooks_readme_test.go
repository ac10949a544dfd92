package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/worker"
)

// verifyWebhook checks a Hustack delivery: a v1 signature made with secret
// over "id.timestamp.body", and a timestamp within 5 minutes of now.
func verifyWebhook(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("webhook-timestamp is not a number")
	}
	if d := now.Sub(time.Unix(unix, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return errors.New("webhook-timestamp is too far from now")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return errors.New("the secret is not whsec_ followed by base64")
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// readmeGoSnippet returns the README's Go program that verifies
// signatures.
func readmeGoSnippet(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range strings.Split(string(readme), "```go\n")[1:] {
		code, _, ok := strings.Cut(block, "```")
		if ok && strings.Contains(code, "func verifyWebhook(") {
			return code
		}
	}
	t.Fatal("the README has no Go block with func verifyWebhook")
	return ""
}

// funcSource returns the source of the top-level function name in src.
func funcSource(t *testing.T, src, name string) string {
	t.Helper()
	start := strings.Index(src, "func "+name+"(")
	if start < 0 {
		t.Fatalf("no func %s", name)
	}
	end := strings.Index(src[start:], "\n}\n")
	if end < 0 {
		t.Fatalf("func %s does not end", name)
	}
	// With its doc comment.
	if i := strings.LastIndex(src[:start], "\n\n"); i >= 0 {
		start = i + 2
	}
	return src[start : start+end+3]
}

// TestREADMEVerifyWebhook checks the README's Go signature check: it is the
// function this test runs (word for word), the README's program builds with
// the standard library alone, and it accepts what the worker signs and
// nothing else.
func TestREADMEVerifyWebhook(t *testing.T) {
	snippet := readmeGoSnippet(t)
	self, err := os.ReadFile("webhooks_readme_test.go")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := funcSource(t, snippet, "verifyWebhook"), funcSource(t, string(self), "verifyWebhook"); got != want {
		t.Fatalf("the README's verifyWebhook differs from the one tested here:\n%s\nwant\n%s", got, want)
	}

	t.Run("the README's program builds", func(t *testing.T) {
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Skip("no go command on PATH")
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(snippet), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/receiver\n\ngo 1.22\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goBin, "vet", ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go vet of the README's receiver: %v\n%s", err, out)
		}
	})

	secret := store.GenerateWebhookSecret()
	id := store.NewID()
	body := []byte(`{"id":"` + id + `","type":"deal.created","created_at":"2026-11-25T09:30:00.123Z","workspace_id":"w","data":{}}`)
	now := time.Now()
	signed := func(t *testing.T, secret string, at time.Time) http.Header {
		t.Helper()
		sig, err := worker.Sign(secret, id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
		h.Set("webhook-signature", sig)
		return h
	}
	good := signed(t, secret, now)
	if err := verifyWebhook(secret, good, body, now); err != nil {
		t.Fatalf("a delivery signed with the secret: %v", err)
	}
	if err := worker.Verify(secret, good, body, 0); err != nil {
		t.Fatalf("worker.Verify refuses what the README accepts: %v", err)
	}
	several := good.Clone()
	several.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))+" "+good.Get("webhook-signature"))
	if err := verifyWebhook(secret, several, body, now.Add(4*time.Minute)); err != nil {
		t.Errorf("one valid signature among several, 4 minutes later: %v", err)
	}

	withHeader := func(name, value string) http.Header {
		h := good.Clone()
		h.Set(name, value)
		return h
	}
	for _, c := range []struct {
		name   string
		secret string
		header http.Header
		body   []byte
		now    time.Time
	}{
		{"another secret", store.GenerateWebhookSecret(), good, body, now},
		{"a changed body", secret, good, []byte(strings.Replace(string(body), "deal.created", "deal.deleted", 1)), now},
		{"another id", secret, withHeader("webhook-id", store.NewID()), body, now},
		{"a changed timestamp", secret, withHeader("webhook-timestamp", strconv.FormatInt(now.Unix()+1, 10)), body, now},
		{"a stale delivery", secret, signed(t, secret, now.Add(-6*time.Minute)), body, now},
		{"a delivery from the future", secret, signed(t, secret, now.Add(6*time.Minute)), body, now},
		{"no signature", secret, withHeader("webhook-signature", ""), body, now},
		{"another version", secret, withHeader("webhook-signature", "v2,"+strings.TrimPrefix(good.Get("webhook-signature"), "v1,")), body, now},
		{"a malformed signature", secret, withHeader("webhook-signature", "v1,not base64!"), body, now},
		{"a malformed timestamp", secret, withHeader("webhook-timestamp", "soon"), body, now},
	} {
		if err := verifyWebhook(c.secret, c.header, c.body, c.now); err == nil {
			t.Errorf("%s: accepted", c.name)
		}
		if err := worker.Verify(c.secret, c.header, c.body, 0); c.now.Equal(now) && err == nil {
			t.Errorf("%s: worker.Verify accepts it", c.name)
		}
	}
}
