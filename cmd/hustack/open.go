package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/hustack/hustack/store"
	"github.com/hustack/hustack/store/mongo"
	"github.com/hustack/hustack/store/sqlite"
)

// openTimeout bounds connecting to the store and preparing it (MongoDB
// indexes, SQLite migrations).
const openTimeout = 30 * time.Second

// sqlitePath is the database file inside the data directory.
func sqlitePath(dataDir string) string { return filepath.Join(dataDir, "hustack.db") }

// openService opens the backend the configuration selects: MongoDB when
// MONGODB_URI is set, otherwise the SQLite file in the data directory. The
// caller closes the service.
func openService(ctx context.Context, cfg Config, opts ...store.Option) (*store.Service, error) {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	var b store.Backend
	if cfg.MongoURI != "" {
		db, err := mongo.Open(ctx, cfg.MongoURI, cfg.MongoDatabase)
		if err != nil {
			// The driver's errors may quote the URI; never print its password.
			return nil, fmt.Errorf("open MongoDB store at %s: %s", maskURL(cfg.MongoURI), maskSecrets(err.Error(), cfg.MongoURI))
		}
		b = db
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		path := sqlitePath(cfg.DataDir)
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("open SQLite store %s: %w", path, err)
		}
		b = db
	}
	opts = append([]store.Option{store.WithIdempotencyTTL(cfg.IdempotencyTTL),
		store.WithTargetPolicy(store.TargetPolicy{AllowInsecure: cfg.WebhookAllowInsecure})}, opts...)
	return store.NewService(b, opts...), nil
}

// dataDirFlag adds --data-dir, which overrides HUSTACK_DATA_DIR, to a
// command that uses the store.
func dataDirFlag(fs *flag.FlagSet, cfg *Config) {
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "SQLite data `DIR` (HUSTACK_DATA_DIR; unused when MONGODB_URI is set)")
}
