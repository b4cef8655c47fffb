from unseen.v1 import crypto_pb2 as _crypto_pb2
from unseen.v1 import mask_pb2 as _mask_pb2
from unseen.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AggregateRequest(_message.Message):
    __slots__ = ("key_id", "plan", "request_id", "vouchers", "allow_partial", "mask")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    MASK_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    plan: _plan_pb2.AggregatePlan
    request_id: str
    vouchers: _containers.RepeatedScalarFieldContainer[str]
    allow_partial: bool
    mask: _mask_pb2.MaskRound
    def __init__(self, key_id: _Optional[str] = ..., plan: _Optional[_Union[_plan_pb2.AggregatePlan, _Mapping]] = ..., request_id: _Optional[str] = ..., vouchers: _Optional[_Iterable[str]] = ..., allow_partial: _Optional[bool] = ..., mask: _Optional[_Union[_mask_pb2.MaskRound, _Mapping]] = ...) -> None: ...

class AggregateHeader(_message.Message):
    __slots__ = ("ciphertexts", "suppressed_groups", "holders", "receipts", "missing_holders", "suppression_reasons")
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_GROUPS_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_HOLDERS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSION_REASONS_FIELD_NUMBER: _ClassVar[int]
    ciphertexts: int
    suppressed_groups: _containers.RepeatedScalarFieldContainer[int]
    holders: _containers.RepeatedScalarFieldContainer[str]
    receipts: _containers.RepeatedScalarFieldContainer[str]
    missing_holders: _containers.RepeatedScalarFieldContainer[str]
    suppression_reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ciphertexts: _Optional[int] = ..., suppressed_groups: _Optional[_Iterable[int]] = ..., holders: _Optional[_Iterable[str]] = ..., receipts: _Optional[_Iterable[str]] = ..., missing_holders: _Optional[_Iterable[str]] = ..., suppression_reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class AggregateReply(_message.Message):
    __slots__ = ("header", "ciphertext")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    header: AggregateHeader
    ciphertext: _crypto_pb2.Ciphertext
    def __init__(self, header: _Optional[_Union[AggregateHeader, _Mapping]] = ..., ciphertext: _Optional[_Union[_crypto_pb2.Ciphertext, _Mapping]] = ...) -> None: ...
