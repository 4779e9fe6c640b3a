package main

import "encoding/json"

// "echo" returns its input: a self-test of the protocol.
func init() {
	register("echo", func(input json.RawMessage) (interface{}, error) {
		var v interface{}
		err := json.Unmarshal(input, &v)
		return v, err
	})
}
