package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// "base64" applies ESO's decodingStrategy to a value: Base64 is base64.StdEncoding, Base64URL is
// base64.URLEncoding (both padded; CR and LF are ignored), Auto tries those two in turn and otherwise
// keeps the value, None keeps it.
//
// Input {"value": base64 (standard) of the raw bytes, "strategy": "None"|"Base64"|"Base64URL"|"Auto"}.
// Answer: base64 (standard) of the decoded bytes, or an error.
func init() {
	register("base64", func(input json.RawMessage) (interface{}, error) {
		var in struct {
			Value    string `json:"value"`
			Strategy string `json:"strategy"`
		}
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		raw, err := base64.StdEncoding.DecodeString(in.Value)
		if err != nil {
			return nil, err
		}
		out, err := esoDecode(in.Strategy, raw)
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString(out), nil
	})
}

func esoDecode(strategy string, in []byte) ([]byte, error) {
	switch strategy {
	case "Base64":
		return base64.StdEncoding.DecodeString(string(in))
	case "Base64URL":
		return base64.URLEncoding.DecodeString(string(in))
	case "None", "":
		return in, nil
	case "Auto":
		if out, err := esoDecode("Base64", in); err == nil {
			return out, nil
		}
		if out, err := esoDecode("Base64URL", in); err == nil {
			return out, nil
		}
		return in, nil
	}
	return nil, fmt.Errorf("decoding strategy %v is not supported", strategy)
}
