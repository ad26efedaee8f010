package store

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ringfront/ringfront/appnode/store/kv"
)

// Backups. Backup takes a consistent snapshot of the running store
// (pebble's checkpoint: the sstables hard-linked when the backup is on
// the same file system, else copied, with the WAL and MANIFEST as of one
// instant) into a new directory, with BackupManifest beside pebble's
// files. Restore puts a backup in place of a stopped member's data and
// gives the store a new id (see ID): the restored store lacks whatever
// the member wrote after the backup, its outbox entries among them, and
// the other members must treat it as the new disk it is — the post
// replicas holding copies of its fan-out then deliver those themselves
// (package fanout) instead of waiting for a coordinator that no longer
// has them. The rest it missed (posts, follows, users, hints it held
// for others) comes back as for any member that starts: it catches up
// from the hints held for it and anti-entropy before it answers alone.

// BackupManifest is the file in a backup that says what it is.
const BackupManifest = "appnode-backup.json"

// BackupInfo describes a backup (its BackupManifest).
type BackupInfo struct {
	Dir string `json:"dir"`
	// StoreID is the id of the store backed up.
	StoreID string    `json:"store_id"`
	Taken   time.Time `json:"taken"`
	Files   int       `json:"files"`
	Bytes   int64     `json:"bytes"`
	// Seconds is how long the backup took.
	Seconds float64 `json:"seconds"`
}

// Errors of Backup's target directory.
var (
	// ErrBackupTarget refuses a backup directory that exists already.
	ErrBackupTarget = kv.ErrBackupTarget
	// ErrBackupDir refuses a backup directory that cannot be one.
	ErrBackupDir = kv.ErrBackupDir
)

// Backup snapshots the store into dir, which must not exist (its parent
// must). It is safe to call while the store is in use; writes go on
// meanwhile and are not in the backup.
func (s *Store) Backup(dir string) (BackupInfo, error) {
	start := time.Now()
	info := BackupInfo{Dir: dir, StoreID: s.ID(), Taken: start.UTC()}
	files, bytes, err := s.db.Checkpoint(dir)
	if err != nil {
		return info, err
	}
	info.Files, info.Bytes = files, bytes
	info.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return info, fmt.Errorf("encoding the backup manifest: %w", err)
	}
	if err := kv.WriteSynced(dir, BackupManifest, b); err != nil {
		return info, fmt.Errorf("writing the backup manifest: %w", err)
	}
	return info, nil
}

// RestoreInfo says what Restore did.
type RestoreInfo struct {
	Backup BackupInfo `json:"backup"`
	// StoreID is the restored store's new id.
	StoreID string `json:"store_id"`
}

// ErrDataDirInUse refuses a restore over a data directory that is not
// empty, unless forced.
var ErrDataDirInUse = kv.ErrDataDirInUse

// Restore copies the backup in from into dataDir, for a member that is
// stopped: a data directory whose database is open (the member runs)
// is refused whatever force says, and one that is not empty is refused
// unless force, when its contents are removed first; run as root, the
// copies get the data directory's owner (kv.Restore). The restored
// store gets a new id (see above). Options are as for Open.
func Restore(from, dataDir string, force bool, opts Options) (RestoreInfo, error) {
	var info RestoreInfo
	b, err := os.ReadFile(filepath.Join(from, BackupManifest))
	if err != nil {
		return info, fmt.Errorf("%s is not an appnode backup (reading %s: %w)", from, BackupManifest, err)
	}
	if err := json.Unmarshal(b, &info.Backup); err != nil {
		return info, fmt.Errorf("%s is not an appnode backup (%s: %w)", from, BackupManifest, err)
	}
	err = kv.Restore(from, dataDir, force, BackupManifest, func() error {
		st, err := Open(dataDir, opts)
		if err != nil {
			return fmt.Errorf("opening the restored store: %w", err)
		}
		if err := st.newID(); err != nil {
			st.Close()
			return fmt.Errorf("giving the restored store a new id: %w", err)
		}
		info.StoreID = st.ID()
		return st.Close()
	})
	return info, err
}
