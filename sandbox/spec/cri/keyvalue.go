package cri

import (
	"encoding/json"

	"github.com/podns/podns/pkg/jsonobj"
)

// cri-api encodes KeyValue.Value as a JSON string, not base64 (its
// pre-1.34 form, which crictl configs use); this copy does the same.

type stringKeyValue struct {
	Key   string `json:"key,omitempty"`
	Value string `json:"value,omitempty"`
}

// MarshalJSON writes the value as a string.
func (k *KeyValue) MarshalJSON() ([]byte, error) {
	return json.Marshal(stringKeyValue{Key: k.GetKey(), Value: string(k.GetValue())})
}

// UnmarshalJSON reads the value as a string.
func (k *KeyValue) UnmarshalJSON(data []byte) error {
	var v stringKeyValue
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	k.Key, k.Value = v.Key, []byte(v.Value)
	return nil
}

// decodeMembers reads the value as a string and, like UnmarshalJSON (and
// cri-api's decoder), ignores members it does not know.
func (k *KeyValue) decodeMembers(o jsonobj.Object) error {
	var v stringKeyValue
	if err := o.GetAll(jsonobj.F("key", &v.Key), jsonobj.F("value", &v.Value)); err != nil {
		return err
	}
	k.Key, k.Value = v.Key, []byte(v.Value)
	return nil
}
