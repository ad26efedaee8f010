package kv

import (
	"fmt"
	"log/slog"
	"time"

	pebblev1 "github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/v2"
	vfsv1 "github.com/cockroachdb/pebble/vfs"
)

// upgradeV1 brings a database written by appnode before its move to
// pebble v2 (pebble v1, which creates databases in its oldest format
// major version) up to a format that pebble v2 opens: pebble v1 itself
// opens it and ratchets it to v1's newest format, rewriting the tables
// in old formats. It returns the format the database was in, or 0 when
// dir holds no such database (no database, or one v2 reads as it is).
// It runs once per database: after it, pebble v2 owns the directory.
func upgradeV1(dir string, log *slog.Logger) (from int, err error) {
	desc, err := pebblev1.Peek(dir, vfsv1.Default)
	if err != nil || !desc.Exists || int(desc.FormatMajorVersion) >= int(pebble.FormatMinSupported) {
		// Not a database that only pebble v1 reads (a format newer than
		// v1 knows is an error here): pebble v2 opens it, or says why not.
		return 0, nil
	}
	from = int(desc.FormatMajorVersion)
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(fatal) // pebbleLogger.Fatalf
			if !ok {
				panic(r)
			}
			err = fmt.Errorf("upgrading the pebble v1 database in %s from format %d: %s", dir, from, f.msg)
		}
	}()
	start := time.Now()
	db, err := pebblev1.Open(dir, &pebblev1.Options{Logger: pebbleLogger{log}})
	if err != nil {
		return from, fmt.Errorf("opening the pebble v1 database in %s to upgrade it: %w", dir, err)
	}
	if err := db.RatchetFormatMajorVersion(pebblev1.FormatNewest); err != nil {
		db.Close()
		return from, fmt.Errorf("upgrading the pebble v1 database in %s from format %d: %w", dir, from, err)
	}
	if err := db.Close(); err != nil {
		return from, fmt.Errorf("closing the upgraded pebble v1 database in %s: %w", dir, err)
	}
	log.Info("store upgraded from pebble v1", "op", "open", "from_format", from,
		"to_format", int(pebblev1.FormatNewest), "seconds", time.Since(start).Seconds())
	return from, nil
}
