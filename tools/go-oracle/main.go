// go-oracle answers questions about ESO's semantics with the Go libraries ESO itself uses (gjson,
// encoding/base64, regexp, text/template + sprig). It is a test tool: differential tests feed it cases
// and compare its answers with ours, byte for byte.
//
// Protocol: one JSON object per line on stdin, {"mode": "...", "input": {...}}; one JSON object per
// line on stdout, {"ok": <mode's answer>} or {"err": "<message>"}, in the same order. Modes register
// themselves in init() (one file per mode), so a new kind of question is a new file.
//
// Build in GOPATH mode (Debian's packages, no network):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o go-oracle .
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
)

type handler func(input json.RawMessage) (interface{}, error)

var modes = map[string]handler{}

func register(name string, h handler) {
	if _, dup := modes[name]; dup {
		panic("mode registered twice: " + name)
	}
	modes[name] = h
}

type request struct {
	Mode  string          `json:"mode"`
	Input json.RawMessage `json:"input"`
}

// response is {"ok": answer} (answer may be "", false or null) or {"err": message}.
type response map[string]interface{}

// answer runs one request, turning a panic inside a mode into an error answer.
func answer(req request) (resp response) {
	defer func() {
		if r := recover(); r != nil {
			resp = response{"err": fmt.Sprintf("panic: %v", r)}
		}
	}()
	h, found := modes[req.Mode]
	if !found {
		return response{"err": "unknown mode " + req.Mode}
	}
	out, err := h(req.Input)
	if err != nil {
		return response{"err": err.Error()}
	}
	return response{"ok": out}
}

func main() {
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriter(os.Stdout)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	dec := json.NewDecoder(in)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			break
		}
		if err := enc.Encode(answer(req)); err != nil {
			os.Exit(1)
		}
		// Answer each line at once: the caller may wait for it before sending the next.
		if err := out.Flush(); err != nil {
			os.Exit(1)
		}
	}
	out.Flush()
}
