from unseen.v1 import crypto_pb2 as _crypto_pb2
from unseen.v1 import plan_pb2 as _plan_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureSpec(_message.Message):
    __slots__ = ("table", "column", "key", "aggregate", "filter", "transform", "default_value")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TRANSFORM_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    table: str
    column: str
    key: str
    aggregate: str
    filter: _plan_pb2.Expr
    transform: str
    default_value: float
    def __init__(self, table: _Optional[str] = ..., column: _Optional[str] = ..., key: _Optional[str] = ..., aggregate: _Optional[str] = ..., filter: _Optional[_Union[_plan_pb2.Expr, _Mapping]] = ..., transform: _Optional[str] = ..., default_value: _Optional[float] = ...) -> None: ...

class PrepareModelRequest(_message.Message):
    __slots__ = ("key_id", "features", "vouchers", "entities")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    features: _containers.RepeatedCompositeFieldContainer[FeatureSpec]
    vouchers: _containers.RepeatedScalarFieldContainer[str]
    entities: int
    def __init__(self, key_id: _Optional[str] = ..., features: _Optional[_Iterable[_Union[FeatureSpec, _Mapping]]] = ..., vouchers: _Optional[_Iterable[str]] = ..., entities: _Optional[int] = ...) -> None: ...

class PreparePart(_message.Message):
    __slots__ = ("header", "entities")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    header: PrepareModelRequest
    entities: EntityChunk
    def __init__(self, header: _Optional[_Union[PrepareModelRequest, _Mapping]] = ..., entities: _Optional[_Union[EntityChunk, _Mapping]] = ...) -> None: ...

class PrepareModelReply(_message.Message):
    __slots__ = ("exponents", "receipts")
    EXPONENTS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    exponents: _containers.RepeatedScalarFieldContainer[int]
    receipts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, exponents: _Optional[_Iterable[int]] = ..., receipts: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelHeader(_message.Message):
    __slots__ = ("key_id", "model_id", "features", "exponents")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    EXPONENTS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    model_id: str
    features: _containers.RepeatedCompositeFieldContainer[FeatureSpec]
    exponents: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, key_id: _Optional[str] = ..., model_id: _Optional[str] = ..., features: _Optional[_Iterable[_Union[FeatureSpec, _Mapping]]] = ..., exponents: _Optional[_Iterable[int]] = ...) -> None: ...

class WeightCiphertext(_message.Message):
    __slots__ = ("feature", "data")
    FEATURE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    feature: int
    data: bytes
    def __init__(self, feature: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ModelPart(_message.Message):
    __slots__ = ("header", "weight")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    header: ModelHeader
    weight: WeightCiphertext
    def __init__(self, header: _Optional[_Union[ModelHeader, _Mapping]] = ..., weight: _Optional[_Union[WeightCiphertext, _Mapping]] = ...) -> None: ...

class ModelAck(_message.Message):
    __slots__ = ("model_id",)
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    def __init__(self, model_id: _Optional[str] = ...) -> None: ...

class HasModelRequest(_message.Message):
    __slots__ = ("key_id", "model_id")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    model_id: str
    def __init__(self, key_id: _Optional[str] = ..., model_id: _Optional[str] = ...) -> None: ...

class HasModelReply(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class ScoreHeader(_message.Message):
    __slots__ = ("model_id", "key_id", "entities", "request_id", "vouchers")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VOUCHERS_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    key_id: str
    entities: int
    request_id: str
    vouchers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model_id: _Optional[str] = ..., key_id: _Optional[str] = ..., entities: _Optional[int] = ..., request_id: _Optional[str] = ..., vouchers: _Optional[_Iterable[str]] = ...) -> None: ...

class EntityChunk(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ScorePart(_message.Message):
    __slots__ = ("header", "entities")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    header: ScoreHeader
    entities: EntityChunk
    def __init__(self, header: _Optional[_Union[ScoreHeader, _Mapping]] = ..., entities: _Optional[_Union[EntityChunk, _Mapping]] = ...) -> None: ...

class ScoreReplyHeader(_message.Message):
    __slots__ = ("ciphertexts", "slots", "holders", "receipts")
    CIPHERTEXTS_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    HOLDERS_FIELD_NUMBER: _ClassVar[int]
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    ciphertexts: int
    slots: int
    holders: _containers.RepeatedScalarFieldContainer[str]
    receipts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ciphertexts: _Optional[int] = ..., slots: _Optional[int] = ..., holders: _Optional[_Iterable[str]] = ..., receipts: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ("header", "ciphertext")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CIPHERTEXT_FIELD_NUMBER: _ClassVar[int]
    header: ScoreReplyHeader
    ciphertext: _crypto_pb2.Ciphertext
    def __init__(self, header: _Optional[_Union[ScoreReplyHeader, _Mapping]] = ..., ciphertext: _Optional[_Union[_crypto_pb2.Ciphertext, _Mapping]] = ...) -> None: ...
