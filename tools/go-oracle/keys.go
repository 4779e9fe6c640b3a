package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
)

// "keys" converts one key with ESO's conversionStrategy: a rune that is not a Unicode letter or
// number (unicode.IsLetter / unicode.IsNumber), '-', '.' or '_' becomes "_" (Default) or
// "_U%04x_" (Unicode).
//
// Input {"key": string, "strategy": "Default"|"Unicode"}. Answer {"key": the converted key (a Go
// string), "unassigned": true when a rune is in no Unicode category of this Go's tables (Go's Unicode
// version may be older than the caller's, so such a rune is a version difference, not a rule)}.
func init() {
	register("keys", func(input json.RawMessage) (interface{}, error) {
		var in struct {
			Key      string `json:"key"`
			Strategy string `json:"strategy"`
		}
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		return map[string]interface{}{
			"key":        convertKey(in.Strategy, in.Key),
			"unassigned": hasUnassigned(in.Key),
			"version":    unicode.Version,
		}, nil
	})
}

func convertKey(strategy, key string) string {
	var b strings.Builder
	for _, r := range key {
		switch {
		case unicode.IsLetter(r) || unicode.IsNumber(r) || r == '-' || r == '.' || r == '_':
			b.WriteRune(r)
		case strategy == "Unicode":
			fmt.Fprintf(&b, "_U%04x_", r)
		default:
			b.WriteString("_")
		}
	}
	return b.String()
}

// hasUnassigned: a rune in no general category of this Go's Unicode tables.
func hasUnassigned(s string) bool {
	for _, r := range s {
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C) {
			return true
		}
	}
	return false
}
