package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// "extract" splits a document into Secret keys the way ESO's dataFrom.extract does: the AWS
// providers' GetSecretMap (strict encoding/json into map[string]json.RawMessage; a value that
// unmarshals as a string is that string, anything else its raw JSON text), then the key conversion
// (see keys.go), then dropping empty keys. ESO's own key check (any Unicode letter or number) is not
// applied: the caller compares against Kubernetes' stricter rule itself.
//
// Input {"doc": base64 of the document bytes, "property": string, "strategy": "Default"|"Unicode"}.
// A non-empty property first selects the document with the "property" mode's rule.
// Answer {"entries": {"<key>": base64 of the value bytes, ...}, "unassigned": true when a key has a
// rune this Go's Unicode tables do not know (see keys.go)}, or an error (not an object, or a key
// collision).
func init() {
	register("extract", func(input json.RawMessage) (interface{}, error) {
		var in struct {
			Doc      string `json:"doc"`
			Property string `json:"property"`
			Strategy string `json:"strategy"`
		}
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(in.Doc)
		if err != nil {
			return nil, err
		}
		if in.Property != "" {
			val := esoProperty(string(raw), in.Property)
			if !val.Exists() {
				return nil, errors.New("property not found")
			}
			raw = []byte(val.String())
		}
		kv := make(map[string]json.RawMessage)
		if err := json.Unmarshal(raw, &kv); err != nil {
			return nil, fmt.Errorf("not a JSON object: %v", err)
		}
		out := make(map[string]interface{}, len(kv))
		unassigned := false
		for k, v := range kv {
			unassigned = unassigned || hasUnassigned(k)
			var s string
			value := []byte(v)
			if json.Unmarshal(v, &s) == nil {
				value = []byte(s)
			}
			key := convertKey(in.Strategy, k)
			if _, dup := out[key]; dup {
				return nil, fmt.Errorf("secret name collision during conversion: %s", key)
			}
			out[key] = base64.StdEncoding.EncodeToString(value)
		}
		delete(out, "")
		return map[string]interface{}{"entries": out, "unassigned": unassigned}, nil
	})
}
