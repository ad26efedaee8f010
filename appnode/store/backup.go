package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
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
	ErrBackupTarget = errors.New("backup directory exists (a backup never overwrites: give a new path)")
	// ErrBackupDir refuses a backup directory that cannot be one.
	ErrBackupDir = errors.New("bad backup directory")
)

// Backup snapshots the store into dir, which must not exist (its parent
// must). It is safe to call while the store is in use; writes go on
// meanwhile and are not in the backup.
func (s *Store) Backup(dir string) (BackupInfo, error) {
	start := time.Now()
	info := BackupInfo{Dir: dir, StoreID: s.ID(), Taken: start.UTC()}
	if !filepath.IsAbs(dir) {
		return info, fmt.Errorf("%w %q: not an absolute path", ErrBackupDir, dir)
	}
	if _, err := os.Lstat(dir); err == nil {
		return info, fmt.Errorf("%s: %w", dir, ErrBackupTarget)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return info, fmt.Errorf("backup directory %s: %w", dir, err)
	}
	if st, err := os.Stat(filepath.Dir(dir)); err != nil || !st.IsDir() {
		return info, fmt.Errorf("%w %s: its parent is not a directory this member can see (%v)", ErrBackupDir, dir, err)
	}
	if s.failed.Load() {
		return info, fmt.Errorf("backing up to %s: %w", dir, ErrFailed)
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return info, fmt.Errorf("backing up to %s: %w", dir, classify(err))
	}
	if err := os.Chmod(dir, 0o700); err != nil { // the member's data: its users' posts and token hashes
		return info, fmt.Errorf("backup directory %s: %w", dir, err)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		info.Files++
		info.Bytes += fi.Size()
		return nil
	})
	if err != nil {
		return info, fmt.Errorf("measuring the backup in %s: %w", dir, err)
	}
	info.Seconds = time.Since(start).Seconds()
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return info, fmt.Errorf("encoding the backup manifest: %w", err)
	}
	if err := writeSynced(filepath.Join(dir, BackupManifest), b); err != nil {
		return info, fmt.Errorf("writing the backup manifest: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return info, fmt.Errorf("syncing %s: %w", dir, err)
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
var ErrDataDirInUse = errors.New("data directory is not empty (give --force to replace its contents)")

// Restore copies the backup in from into dataDir, for a member that is
// stopped: a data directory whose database is open (the member runs)
// is refused whatever force says, and one that is not empty is refused
// unless force, when its contents are removed first. The restored store
// gets a new id (see above). Options are as for Open.
func Restore(from, dataDir string, force bool, opts Options) (RestoreInfo, error) {
	var info RestoreInfo
	b, err := os.ReadFile(filepath.Join(from, BackupManifest))
	if err != nil {
		return info, fmt.Errorf("%s is not an appnode backup (reading %s: %w)", from, BackupManifest, err)
	}
	if err := json.Unmarshal(b, &info.Backup); err != nil {
		return info, fmt.Errorf("%s is not an appnode backup (%s: %w)", from, BackupManifest, err)
	}
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return info, fmt.Errorf("creating data directory %s: %w", dataDir, err)
		}
	case err != nil:
		return info, fmt.Errorf("reading data directory %s: %w", dataDir, err)
	case len(entries) > 0:
		if pid, held := lockHolder(filepath.Join(dataDir, "LOCK")); held {
			return info, fmt.Errorf("restoring into %s: %w", dataDir, &LockedError{Dir: dataDir, PID: pid})
		}
		if !force {
			return info, fmt.Errorf("restoring into %s: %w", dataDir, ErrDataDirInUse)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dataDir, e.Name())); err != nil {
				return info, fmt.Errorf("clearing data directory %s: %w", dataDir, err)
			}
		}
	}
	// The copies get the data directory's owner: run as root, a restore
	// into a service's StateDirectory leaves files its user can open.
	own := func(string) error { return nil }
	if st, err := os.Stat(dataDir); err == nil && os.Geteuid() == 0 {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			own = func(path string) error { return os.Lchown(path, int(sys.Uid), int(sys.Gid)) }
		}
	}
	err = filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil || rel == "." || rel == BackupManifest {
			return err
		}
		to := filepath.Join(dataDir, rel)
		switch {
		case d.IsDir():
			err = os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", path)
		default:
			err = copySynced(path, to)
		}
		if err != nil {
			return err
		}
		return own(to)
	})
	if err != nil {
		return info, fmt.Errorf("copying %s into %s: %w", from, dataDir, err)
	}
	if err := syncDir(dataDir); err != nil {
		return info, fmt.Errorf("syncing %s: %w", dataDir, err)
	}
	st, err := Open(dataDir, opts)
	if err != nil {
		return info, fmt.Errorf("opening the restored store: %w", err)
	}
	if err := st.newID(); err != nil {
		st.Close()
		return info, fmt.Errorf("giving the restored store a new id: %w", err)
	}
	info.StoreID = st.ID()
	if err := st.Close(); err != nil {
		return info, err
	}
	// Opening wrote files (the LOCK, a new WAL and MANIFEST): they too.
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return own(path)
	})
	if err != nil {
		return info, fmt.Errorf("giving the restored files the data directory's owner: %w", err)
	}
	return info, nil
}

// copySynced copies file from to a new file to, synced.
func copySynced(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", from, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("syncing %s: %w", to, err)
	}
	return out.Close()
}

// writeSynced writes a new file, synced.
func writeSynced(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
