package node

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/internal/daemon"
)

// backup is the admin API's POST /v1/backup?dir=DIR: a consistent
// snapshot of the running member's store into DIR (absolute, new; see
// store.Backup), answered with the store.BackupInfo. One backup runs at
// a time.
func (n *Node) backup(w http.ResponseWriter, r *http.Request) {
	dir := r.URL.Query().Get("dir")
	if dir == "" {
		daemon.WriteError(w, http.StatusBadRequest, errors.New("dir: missing (POST /v1/backup?dir=/absolute/new/directory)"))
		return
	}
	if !n.backupMu.TryLock() {
		daemon.WriteError(w, http.StatusConflict, fmt.Errorf("dir %q: another backup is running", dir))
		return
	}
	defer n.backupMu.Unlock()
	info, err := n.store.Backup(dir)
	switch {
	case errors.Is(err, store.ErrBackupTarget):
		daemon.WriteError(w, http.StatusConflict, fmt.Errorf("dir: %w", err))
		return
	case errors.Is(err, store.ErrBackupDir):
		daemon.WriteError(w, http.StatusBadRequest, fmt.Errorf("dir: %w", err))
		return
	case errors.Is(err, store.ErrFailed):
		daemon.WriteError(w, http.StatusServiceUnavailable, err)
		return
	case err != nil:
		n.log.Error("backup failed", "op", "backup", "dir", dir, "err", err)
		daemon.WriteError(w, http.StatusInternalServerError, err)
		return
	}
	n.log.Info("backed up", "op", "backup", "dir", dir, "files", info.Files, "bytes", info.Bytes, "seconds", info.Seconds)
	daemon.WriteJSON(w, http.StatusOK, info)
}
