package main

import (
	"bytes"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hustack/hustack/store"
)

func TestLoadConfigDefaults(t *testing.T) {
	c, err := loadConfig(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: "127.0.0.1:8080", DataDir: "./data", MongoDatabase: "hustack", Worker: true, MCP: true,
		RateLimit: store.RateLimit{Count: 100, Period: 10 * time.Second}, RateLimitMode: "synced",
		UsageRetention: 90 * 24 * time.Hour, LogLevel: slog.LevelInfo, LogFormat: "text",
		TombstoneRetention: 30 * 24 * time.Hour, IdempotencyTTL: 24 * time.Hour,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults = %+v, want %+v", c, want)
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	env := testEnv{
		"HUSTACK_ADDR":                "0.0.0.0:9090",
		"HUSTACK_DATA_DIR":            "/var/lib/hustack",
		"MONGODB_URI":                 "mongodb://mongo:27017",
		"MONGODB_DATABASE":            "crm",
		"REDIS_URL":                   "redis://redis:6379/1",
		"HUSTACK_WORKER":              "off",
		"HUSTACK_MCP":                 "false",
		"HUSTACK_RATE_LIMIT":          "600/m",
		"HUSTACK_USAGE_RETENTION":     "30d",
		"HUSTACK_LOG_LEVEL":           "debug",
		"HUSTACK_LOG_FORMAT":          "JSON",
		"HUSTACK_RATE_LIMIT_MODE":     "Exact",
		"HUSTACK_URL":                 "http://127.0.0.1:9090/api/v1",
		"HUSTACK_API_KEY":             "hs_live_secret",
		"HUSTACK_TOMBSTONE_RETENTION": "7d",
		"HUSTACK_IDEMPOTENCY_TTL":     "48h",

		"HUSTACK_WEBHOOK_ALLOW_INSECURE": "on",
		"HUSTACK_WEBHOOK_RETRY_SCHEDULE": "1s, 2s,1m",
		"HUSTACK_WEBHOOK_TIMEOUT":        "2s",
		"HUSTACK_WEBHOOK_DISABLE_AFTER":  "1h",
	}
	c, err := loadConfig(env.getenv)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Addr: "0.0.0.0:9090", DataDir: "/var/lib/hustack", MongoURI: "mongodb://mongo:27017", MongoDatabase: "crm",
		RedisURL: "redis://redis:6379/1", Worker: false, MCP: false,
		RateLimit: store.RateLimit{Count: 600, Period: time.Minute}, RateLimitMode: "exact",
		UsageRetention: 30 * 24 * time.Hour, LogLevel: slog.LevelDebug, LogFormat: "json",
		URL: "http://127.0.0.1:9090/api/v1", APIKey: "hs_live_secret",
		TombstoneRetention: 7 * 24 * time.Hour, IdempotencyTTL: 48 * time.Hour,
		WebhookAllowInsecure: true, WebhookRetries: []time.Duration{time.Second, 2 * time.Second, time.Minute},
		WebhookTimeout: 2 * time.Second, WebhookDisableAfter: time.Hour,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config = %+v, want %+v", c, want)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for name, value := range map[string]string{
		"HUSTACK_WORKER":                 "maybe",
		"HUSTACK_MCP":                    "2",
		"HUSTACK_RATE_LIMIT":             "fast",
		"HUSTACK_USAGE_RETENTION":        "forever",
		"HUSTACK_LOG_LEVEL":              "loud",
		"HUSTACK_LOG_FORMAT":             "xml",
		"HUSTACK_RATE_LIMIT_MODE":        "approximate",
		"HUSTACK_TOMBSTONE_RETENTION":    "a month",
		"HUSTACK_IDEMPOTENCY_TTL":        "30s", // shorter than a request and its retries
		"HUSTACK_WEBHOOK_ALLOW_INSECURE": "sometimes",
		"HUSTACK_WEBHOOK_RETRY_SCHEDULE": "1s,,2s",
		"HUSTACK_WEBHOOK_TIMEOUT":        "2h",
		"HUSTACK_WEBHOOK_DISABLE_AFTER":  "-1h",
	} {
		_, err := loadConfig(testEnv{name: value}.getenv)
		if err == nil || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), value) {
			t.Errorf("%s=%s: error %v, want one naming the variable and the value", name, value, err)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"720h": 720 * time.Hour, "90m": 90 * time.Minute, "1h30m": 90 * time.Minute,
		"30d": 30 * 24 * time.Hour, "1d": 24 * time.Hour, " 2d ": 48 * time.Hour,
	}
	for in, want := range good {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "0d", "0s", "-3h", "3 weeks", "30", "1w", "99999999d"} {
		if got, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) = %v, want an error", in, got)
		}
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"mongodb://localhost:27017", "mongodb://localhost:27017"},
		{"mongodb://admin:s3cret@mongo:27017/?authSource=admin", "mongodb://admin:xxxxx@mongo:27017/?authSource=admin"},
		{"mongodb+srv://u:p%40ss@cluster0.example.net/hustack?retryWrites=true", "mongodb+srv://u:xxxxx@cluster0.example.net/hustack?retryWrites=true"},
		{"mongodb://u:pa@ss/wd@h1:27017,h2:27017/db?replicaSet=rs0", "mongodb://u:xxxxx@h1:27017,h2:27017/db?replicaSet=rs0"},
		{"mongodb://u:pw@h/db?authMechanismProperties=AWS_SESSION_TOKEN:abc", "mongodb://u:xxxxx@h/db?authMechanismProperties=xxxxx"},
		{"redis://:hunter2@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"redis://default:hunter2@redis:6379", "redis://default:xxxxx@redis:6379"},
		{"redis://redis:6379/0?password=hunter2", "redis://redis:6379/0?password=xxxxx"},
		{"not a uri hunter2", "xxxxx"},
	}
	for _, tc := range tests {
		if got := maskURL(tc.in); got != tc.want {
			t.Errorf("maskURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestConfigNeverShowsSecrets checks every way the configuration is printed
// or logged.
func TestConfigNeverShowsSecrets(t *testing.T) {
	env := testEnv{
		"MONGODB_URI":     "mongodb://admin:m0ngoPassw0rd@mongo:27017/?authSource=admin",
		"REDIS_URL":       "redis://:r3disPassw0rd@redis:6379/0",
		"HUSTACK_API_KEY": "hs_live_k3yS3cretValue",
	}
	c, err := loadConfig(env.getenv)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("configuration", "config", c)
	var text bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("configuration", "config", c)
	for what, out := range map[string]string{
		"String":   c.String(),
		"JSON log": logged.String(),
		"text log": text.String(),
		"store":    c.storeDescription(),
	} {
		for _, secret := range []string{"m0ngoPassw0rd", "r3disPassw0rd", "k3yS3cretValue"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows a secret: %s", what, out)
			}
		}
		if !strings.Contains(out, "mongo:27017") {
			t.Errorf("%s does not show the MongoDB host: %s", what, out)
		}
	}
	if got := redisDescription(c); got != "redis://:xxxxx@redis:6379/0" {
		t.Errorf("redisDescription = %q", got)
	}
	if !strings.Contains(c.String(), "HUSTACK_API_KEY=xxxxx\n") {
		t.Errorf("String() does not show that HUSTACK_API_KEY is set: %s", c.String())
	}
	if !strings.Contains(c.String(), "REDIS_URL=redis://:xxxxx@redis:6379/0") {
		t.Errorf("String() = %s", c.String())
	}
}

func TestMaskSecrets(t *testing.T) {
	uri := "mongodb://admin:p%40ss@mongo:27017/"
	msg := "auth failed for mongodb://admin:p%40ss@mongo:27017/ with password p@ss"
	got := maskSecrets(msg, uri)
	if strings.Contains(got, "p%40ss") || strings.Contains(got, "p@ss") {
		t.Errorf("maskSecrets = %q", got)
	}
}
