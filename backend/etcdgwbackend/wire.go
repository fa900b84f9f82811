package etcdgwbackend

import (
	"strconv"
)

// The JSON shapes of the etcd v3 gateway (grpc-gateway's mapping of
// etcdserverpb): field names are the protobuf names, 64-bit integers are
// decimal strings, bytes (keys and values) are base64, which
// encoding/json does for []byte. Zero values are omitted by the server.

// header is etcdserverpb.ResponseHeader.
type header struct {
	Revision int64 `json:"revision,string"`
}

// keyValue is mvccpb.KeyValue.
type keyValue struct {
	Key            []byte `json:"key"`
	CreateRevision int64  `json:"create_revision,string"`
	ModRevision    int64  `json:"mod_revision,string"`
	Version        int64  `json:"version,string"`
	Value          []byte `json:"value"`
	Lease          int64  `json:"lease,string"`
}

// rangeRequest is etcdserverpb.RangeRequest.
type rangeRequest struct {
	Key               []byte `json:"key"`
	RangeEnd          []byte `json:"range_end,omitempty"`
	Limit             int64  `json:"limit,omitempty,string"`
	SortOrder         string `json:"sort_order,omitempty"`
	SortTarget        string `json:"sort_target,omitempty"`
	KeysOnly          bool   `json:"keys_only,omitempty"`
	CountOnly         bool   `json:"count_only,omitempty"`
	MaxCreateRevision int64  `json:"max_create_revision,omitempty,string"`
}

// rangeResponse is etcdserverpb.RangeResponse.
type rangeResponse struct {
	Header header      `json:"header"`
	Kvs    []*keyValue `json:"kvs"`
	Count  int64       `json:"count,string"`
}

// putRequest is etcdserverpb.PutRequest.
type putRequest struct {
	Key         []byte `json:"key"`
	Value       []byte `json:"value,omitempty"`
	Lease       int64  `json:"lease,omitempty,string"`
	IgnoreLease bool   `json:"ignore_lease,omitempty"`
}

// putResponse is etcdserverpb.PutResponse.
type putResponse struct {
	Header header `json:"header"`
}

// deleteRequest is etcdserverpb.DeleteRangeRequest.
type deleteRequest struct {
	Key      []byte `json:"key"`
	RangeEnd []byte `json:"range_end,omitempty"`
}

// deleteResponse is etcdserverpb.DeleteRangeResponse.
type deleteResponse struct {
	Header  header `json:"header"`
	Deleted int64  `json:"deleted,string"`
}

// compare is etcdserverpb.Compare, built by the functions below. The
// target value is always sent, zero included (a CREATE compare with 0
// means "the key does not exist").
type compare map[string]any

// cmpCreate compares the create revision of key (of every key under key
// when prefix is set: a range compare) with rev; result is EQUAL,
// GREATER, LESS or NOT_EQUAL.
func cmpCreate(key, result string, rev int64, prefix bool) compare {
	c := compare{"key": []byte(key), "target": "CREATE", "result": result, "create_revision": strconv.FormatInt(rev, 10)}
	if prefix {
		c["range_end"] = prefixEnd(key)
	}
	return c
}

// cmpMod compares the mod revision of key with rev.
func cmpMod(key, result string, rev int64) compare {
	return compare{"key": []byte(key), "target": "MOD", "result": result, "mod_revision": strconv.FormatInt(rev, 10)}
}

// requestOp is etcdserverpb.RequestOp: exactly one field is set.
type requestOp struct {
	Range  *rangeRequest  `json:"request_range,omitempty"`
	Put    *putRequest    `json:"request_put,omitempty"`
	Delete *deleteRequest `json:"request_delete_range,omitempty"`
}

// responseOp is etcdserverpb.ResponseOp.
type responseOp struct {
	Range  *rangeResponse  `json:"response_range"`
	Put    *putResponse    `json:"response_put"`
	Delete *deleteResponse `json:"response_delete_range"`
}

// rangeOf returns the range response of op, never nil.
func (r responseOp) rangeOf() *rangeResponse {
	if r.Range == nil {
		return &rangeResponse{}
	}
	return r.Range
}

// txnRequest is etcdserverpb.TxnRequest.
type txnRequest struct {
	Compare []compare   `json:"compare,omitempty"`
	Success []requestOp `json:"success,omitempty"`
	Failure []requestOp `json:"failure,omitempty"`
}

// txnResponse is etcdserverpb.TxnResponse.
type txnResponse struct {
	Header    header       `json:"header"`
	Succeeded bool         `json:"succeeded"`
	Responses []responseOp `json:"responses"`
}

// leaseGrantRequest is etcdserverpb.LeaseGrantRequest.
type leaseGrantRequest struct {
	TTL int64 `json:"TTL,string"`
}

// leaseGrantResponse is etcdserverpb.LeaseGrantResponse.
type leaseGrantResponse struct {
	Header header `json:"header"`
	ID     int64  `json:"ID,string"`
	TTL    int64  `json:"TTL,string"`
	Error  string `json:"error"`
}

// leaseIDRequest is LeaseKeepAliveRequest and LeaseRevokeRequest.
type leaseIDRequest struct {
	ID int64 `json:"ID,string"`
}

// leaseKeepAliveResponse is etcdserverpb.LeaseKeepAliveResponse. A TTL of
// 0 means the lease does not exist.
type leaseKeepAliveResponse struct {
	Header header `json:"header"`
	ID     int64  `json:"ID,string"`
	TTL    int64  `json:"TTL,string"`
}

// watchCreateRequest is etcdserverpb.WatchCreateRequest.
type watchCreateRequest struct {
	Key           []byte   `json:"key"`
	RangeEnd      []byte   `json:"range_end,omitempty"`
	StartRevision int64    `json:"start_revision,omitempty,string"`
	PrevKV        bool     `json:"prev_kv,omitempty"`
	Filters       []string `json:"filters,omitempty"`
}

// watchRequest is etcdserverpb.WatchRequest (only creation is sent: one
// HTTP request carries one watch).
type watchRequest struct {
	Create watchCreateRequest `json:"create_request"`
}

// event is mvccpb.Event; Type is "" for a put.
type event struct {
	Type   string    `json:"type"`
	Kv     *keyValue `json:"kv"`
	PrevKv *keyValue `json:"prev_kv"`
}

// isDelete reports a deletion.
func (e *event) isDelete() bool { return e.Type == "DELETE" }

// isCreate reports a put that created the key.
func (e *event) isCreate() bool { return !e.isDelete() && e.Kv.CreateRevision == e.Kv.ModRevision }

// watchResponse is etcdserverpb.WatchResponse.
type watchResponse struct {
	Header          header   `json:"header"`
	Created         bool     `json:"created"`
	Canceled        bool     `json:"canceled"`
	CompactRevision int64    `json:"compact_revision,string"`
	CancelReason    string   `json:"cancel_reason"`
	Events          []*event `json:"events"`
}

// streamMessage is one message of a streaming gateway response: a result
// or an error.
type streamMessage[T any] struct {
	Result *T           `json:"result"`
	Error  *streamError `json:"error"`
}

// streamError is grpc-gateway's error object inside a stream.
type streamError struct {
	GRPCCode   int    `json:"grpc_code"`
	HTTPCode   int    `json:"http_code"`
	Message    string `json:"message"`
	HTTPStatus string `json:"http_status"`
}

// prefixEnd returns the range end covering every key that starts with
// prefix (clientv3.GetPrefixRangeEnd).
func prefixEnd(prefix string) []byte {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0} // every key
}
