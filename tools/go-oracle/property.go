package main

import (
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/tidwall/gjson"
)

// "property" reads remoteRef.property from a document the way ESO's AWS providers do: when the
// property has a dot, the fully dot-escaped path is tried first (a literal key "a.b"), then the
// property as a plain gjson path; the value is gjson's Result.String().
//
// Input {"doc": string, "property": string}. Answer {"exists": bool, "value": base64 of the bytes}.
// (Base64, because gjson may produce bytes that are not valid UTF-8.)
func init() {
	register("property", func(input json.RawMessage) (interface{}, error) {
		var in struct {
			Doc      string `json:"doc"`
			Property string `json:"property"`
		}
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		val := esoProperty(in.Doc, in.Property)
		return map[string]interface{}{
			"exists": val.Exists(),
			"value":  base64.StdEncoding.EncodeToString([]byte(val.String())),
		}, nil
	})
}

func esoProperty(doc, property string) gjson.Result {
	if strings.Contains(property, ".") {
		val := gjson.Get(doc, strings.ReplaceAll(property, ".", "\\."))
		if val.Exists() {
			return val
		}
	}
	return gjson.Get(doc, property)
}
