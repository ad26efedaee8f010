package main

import (
	"encoding/json"
	"net/http"
	"runtime"
)

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}

func numCPU() int { return runtime.NumCPU() }
