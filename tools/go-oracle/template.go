package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"text/template"

	"github.com/Masterminds/sprig"
)

// "template" renders like ESO's engine v2: text/template with missingkey=error and sprig's text
// function map minus env/expandenv, over a map of strings (ESO turns each []byte value into a string).
// Input {"text": "...", "data": {"k": "v"}, "name": "key"}; answer: the output (a string, possibly
// holding bytes that are not UTF-8, see "b64") or the Go error. With "b64": true the output is
// base64-encoded so binary output survives JSON.
type templateInput struct {
	Text    string            `json:"text"`
	Data    map[string]string `json:"data"`
	DataB64 map[string]string `json:"data_b64"`
	Name    string            `json:"name"`
	B64     bool              `json:"b64"`
}

var templateFuncs = func() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	return f
}()

func init() {
	register("template", func(input json.RawMessage) (interface{}, error) {
		var in templateInput
		if err := json.Unmarshal(input, &in); err != nil {
			return nil, err
		}
		data := map[string]string{}
		for k, v := range in.Data {
			data[k] = v
		}
		for k, v := range in.DataB64 {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return nil, errors.New("oracle: bad data_b64")
			}
			data[k] = string(raw)
		}
		name := in.Name
		if name == "" {
			name = "t"
		}
		t, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(in.Text)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if err := t.Execute(&buf, data); err != nil {
			return nil, err
		}
		if in.B64 {
			return map[string]interface{}{"b64": base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
		}
		return buf.String(), nil
	})
}
