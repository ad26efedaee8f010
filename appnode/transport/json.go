package transport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/ringfront/ringfront/appnode/store"
	"github.com/ringfront/ringfront/internal/daemon"
)

// Bodies of requests and answers, the members' own and clients': JSON,
// read strictly, errors as {"error": "..."} with the status that says
// whose problem it is.

// WriteError writes {"error": "..."}.
func WriteError(w http.ResponseWriter, code int, err error) { daemon.WriteError(w, code, err) }

// WriteJSON writes v compactly; API answers are for programs.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		WriteError(w, http.StatusInternalServerError, fmt.Errorf("encoding answer: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// ReadJSON decodes a request body of at most limit bytes into v,
// strictly: unknown fields and trailing data are errors. It answers the
// request itself on failure. The body stays readable (for forwarding).
func ReadJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		WriteError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("request body is larger than %d bytes", limit))
		return false
	case err != nil:
		WriteError(w, http.StatusBadRequest, fmt.Errorf("reading request body: %w", err))
		return false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		WriteError(w, http.StatusBadRequest, fmt.Errorf("request body is not the expected JSON: %w", err))
		return false
	}
	if dec.More() {
		WriteError(w, http.StatusBadRequest, errors.New("request body has data after the JSON object"))
		return false
	}
	return true
}

// StoreError answers a failed store operation.
func StoreError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		WriteError(w, http.StatusNotFound, err)
	case errors.Is(err, store.ErrExists):
		WriteError(w, http.StatusConflict, err)
	case errors.Is(err, store.ErrDiskFull):
		WriteError(w, http.StatusInsufficientStorage, err)
	case errors.Is(err, store.ErrReadOnly), errors.Is(err, store.ErrFailed):
		WriteError(w, http.StatusServiceUnavailable, err)
	default:
		WriteError(w, http.StatusInternalServerError, err)
	}
}
