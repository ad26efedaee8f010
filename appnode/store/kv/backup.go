package kv

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Copies of the database's files, for backups: Checkpoint takes one of
// the running database (pebble's checkpoint: the sstables hard-linked
// when the copy is on the same file system, else copied, with the WAL
// and MANIFEST as of one instant) into a new directory, and Restore puts
// one in place of a stopped member's data. What a backup means (its
// manifest, the store's new id) is the store's business.

// Errors of Checkpoint's target directory.
var (
	// ErrBackupTarget refuses a backup directory that exists already.
	ErrBackupTarget = errors.New("backup directory exists (a backup never overwrites: give a new path)")
	// ErrBackupDir refuses a backup directory that cannot be one.
	ErrBackupDir = errors.New("bad backup directory")
)

// ErrDataDirInUse refuses a restore over a data directory that is not
// empty, unless forced.
var ErrDataDirInUse = errors.New("data directory is not empty (give --force to replace its contents)")

// Checkpoint copies the database into dir, which must not exist (its
// parent must), and reports how many files and bytes the copy holds. It
// is safe to call while the database is in use; writes go on meanwhile
// and are not in the copy.
func (d *DB) Checkpoint(dir string) (files int, bytes int64, err error) {
	if !filepath.IsAbs(dir) {
		return 0, 0, fmt.Errorf("%w %q: not an absolute path", ErrBackupDir, dir)
	}
	if _, err := os.Lstat(dir); err == nil {
		return 0, 0, fmt.Errorf("%s: %w", dir, ErrBackupTarget)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, 0, fmt.Errorf("backup directory %s: %w", dir, err)
	}
	if st, err := os.Stat(filepath.Dir(dir)); err != nil || !st.IsDir() {
		return 0, 0, fmt.Errorf("%w %s: its parent is not a directory this member can see (%v)", ErrBackupDir, dir, err)
	}
	if d.failed.Load() {
		return 0, 0, fmt.Errorf("backing up to %s: %w", dir, ErrFailed)
	}
	if err := d.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return 0, 0, fmt.Errorf("backing up to %s: %w", dir, classify(err))
	}
	if err := os.Chmod(dir, 0o700); err != nil { // the member's data: its users' posts and token hashes
		return 0, 0, fmt.Errorf("backup directory %s: %w", dir, err)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		bytes += fi.Size()
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("measuring the backup in %s: %w", dir, err)
	}
	return files, bytes, nil
}

// Restore copies the database files in from (a Checkpoint, with the
// file named skip left out) into dataDir, for a member that is stopped:
// a data directory whose database is open (the member runs) is refused
// whatever force says, and one that is not empty is refused unless
// force, when its contents are removed first. It then calls opened, for
// the caller to open the restored database and change what it must.
// Run as root, it gives every file the data directory's owner: a
// restore into a service's StateDirectory leaves files its user can
// open.
func Restore(from, dataDir string, force bool, skip string, opened func() error) error {
	entries, err := os.ReadDir(dataDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return fmt.Errorf("creating data directory %s: %w", dataDir, err)
		}
	case err != nil:
		return fmt.Errorf("reading data directory %s: %w", dataDir, err)
	case len(entries) > 0:
		if pid, held := lockHolder(filepath.Join(dataDir, "LOCK")); held {
			return fmt.Errorf("restoring into %s: %w", dataDir, &LockedError{Dir: dataDir, PID: pid})
		}
		if !force {
			return fmt.Errorf("restoring into %s: %w", dataDir, ErrDataDirInUse)
		}
		for _, e := range entries {
			if err := os.RemoveAll(filepath.Join(dataDir, e.Name())); err != nil {
				return fmt.Errorf("clearing data directory %s: %w", dataDir, err)
			}
		}
	}
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
		if err != nil || rel == "." || rel == skip {
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
		return fmt.Errorf("copying %s into %s: %w", from, dataDir, err)
	}
	if err := syncDir(dataDir); err != nil {
		return fmt.Errorf("syncing %s: %w", dataDir, err)
	}
	if err := opened(); err != nil {
		return err
	}
	// Opening wrote files (the LOCK, a new WAL and MANIFEST): they too.
	err = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return own(path)
	})
	if err != nil {
		return fmt.Errorf("giving the restored files the data directory's owner: %w", err)
	}
	return nil
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

// WriteSynced writes a new file into a directory, synced, and syncs the
// directory: the file is durable when it returns nil.
func WriteSynced(dir, name string, b []byte) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
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
	if err := f.Close(); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
