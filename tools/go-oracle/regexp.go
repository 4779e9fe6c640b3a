package main

import (
	"encoding/json"
	"regexp"
)

// "regexp" answers what ESO's find and rewrite do with a Go regular expression: regexp.Compile, then
// MatchString (find.name.regexp) and ReplaceAllString with a template (rewrite[].regexp, with Go's
// $1 / ${1} / $name / $$ expansion).
//
// Input {"pattern": string, "text": string, "template": string}.
// Answer {"match": bool, "replaced": string}, or an error when the pattern does not compile.
func init() {
	register("regexp", func(input json.RawMessage) (interface{}, error) {
		var in struct {
			Pattern  string `json:"pattern"`
			Text     string `json:"text"`
			Template string `json:"template"`
		}
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		re, err := regexp.Compile(in.Pattern)
		if err != nil {
			return nil, err
		}
		return map[string]interface{}{
			"match":    re.MatchString(in.Text),
			"replaced": re.ReplaceAllString(in.Text, in.Template),
		}, nil
	})
}
