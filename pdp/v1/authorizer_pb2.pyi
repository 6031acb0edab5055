import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ALLOW: _ClassVar[Decision]
    DECISION_DENY: _ClassVar[Decision]

class PlanKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLAN_KIND_UNSPECIFIED: _ClassVar[PlanKind]
    PLAN_KIND_ALWAYS_ALLOWED: _ClassVar[PlanKind]
    PLAN_KIND_ALWAYS_DENIED: _ClassVar[PlanKind]
    PLAN_KIND_CONDITIONAL: _ClassVar[PlanKind]
DECISION_UNSPECIFIED: Decision
DECISION_ALLOW: Decision
DECISION_DENY: Decision
PLAN_KIND_UNSPECIFIED: PlanKind
PLAN_KIND_ALWAYS_ALLOWED: PlanKind
PLAN_KIND_ALWAYS_DENIED: PlanKind
PLAN_KIND_CONDITIONAL: PlanKind

class EntityUid(_message.Message):
    __slots__ = ("type", "id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    type: str
    id: str
    def __init__(self, type: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class Entity(_message.Message):
    __slots__ = ("uid", "attrs", "parents", "tags")
    UID_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    uid: EntityUid
    attrs: _struct_pb2.Struct
    parents: _containers.RepeatedCompositeFieldContainer[EntityUid]
    tags: _struct_pb2.Struct
    def __init__(self, uid: _Optional[_Union[EntityUid, _Mapping]] = ..., attrs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., parents: _Optional[_Iterable[_Union[EntityUid, _Mapping]]] = ..., tags: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class IsAuthorizedRequest(_message.Message):
    __slots__ = ("principal", "action", "resource", "context", "entities", "context_json", "entities_json")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_JSON_FIELD_NUMBER: _ClassVar[int]
    principal: EntityUid
    action: EntityUid
    resource: EntityUid
    context: _struct_pb2.Struct
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    context_json: str
    entities_json: str
    def __init__(self, principal: _Optional[_Union[EntityUid, _Mapping]] = ..., action: _Optional[_Union[EntityUid, _Mapping]] = ..., resource: _Optional[_Union[EntityUid, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., context_json: _Optional[str] = ..., entities_json: _Optional[str] = ...) -> None: ...

class IsAuthorizedResponse(_message.Message):
    __slots__ = ("decision", "determining_policies", "errors", "decision_id", "bundle_revision", "erroring_policies")
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DETERMINING_POLICIES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    ERRORING_POLICIES_FIELD_NUMBER: _ClassVar[int]
    decision: Decision
    determining_policies: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedScalarFieldContainer[str]
    decision_id: str
    bundle_revision: str
    erroring_policies: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, decision: _Optional[_Union[Decision, str]] = ..., determining_policies: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[str]] = ..., decision_id: _Optional[str] = ..., bundle_revision: _Optional[str] = ..., erroring_policies: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchIsAuthorizedRequest(_message.Message):
    __slots__ = ("requests", "entities", "entities_json")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_JSON_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[IsAuthorizedRequest]
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    entities_json: str
    def __init__(self, requests: _Optional[_Iterable[_Union[IsAuthorizedRequest, _Mapping]]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., entities_json: _Optional[str] = ...) -> None: ...

class BatchIsAuthorizedResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[IsAuthorizedResponse]
    def __init__(self, results: _Optional[_Iterable[_Union[IsAuthorizedResponse, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("serving", "bundle_name", "bundle_revision", "activated_at", "bundle_path", "policy_count", "template_link_count", "entity_count", "activations", "load_failures", "last_error", "last_error_at", "warnings", "version", "started_at", "pid", "bundle_source", "last_fetch_at", "last_fetch_error", "from_cache", "protection")
    SERVING_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_NAME_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    ACTIVATED_AT_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PATH_FIELD_NUMBER: _ClassVar[int]
    POLICY_COUNT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_LINK_COUNT_FIELD_NUMBER: _ClassVar[int]
    ENTITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVATIONS_FIELD_NUMBER: _ClassVar[int]
    LOAD_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_AT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    LAST_FETCH_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_FETCH_ERROR_FIELD_NUMBER: _ClassVar[int]
    FROM_CACHE_FIELD_NUMBER: _ClassVar[int]
    PROTECTION_FIELD_NUMBER: _ClassVar[int]
    serving: bool
    bundle_name: str
    bundle_revision: str
    activated_at: _timestamp_pb2.Timestamp
    bundle_path: str
    policy_count: int
    template_link_count: int
    entity_count: int
    activations: int
    load_failures: int
    last_error: str
    last_error_at: _timestamp_pb2.Timestamp
    warnings: _containers.RepeatedScalarFieldContainer[str]
    version: str
    started_at: _timestamp_pb2.Timestamp
    pid: int
    bundle_source: str
    last_fetch_at: _timestamp_pb2.Timestamp
    last_fetch_error: str
    from_cache: bool
    protection: ProtectionStatus
    def __init__(self, serving: _Optional[bool] = ..., bundle_name: _Optional[str] = ..., bundle_revision: _Optional[str] = ..., activated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bundle_path: _Optional[str] = ..., policy_count: _Optional[int] = ..., template_link_count: _Optional[int] = ..., entity_count: _Optional[int] = ..., activations: _Optional[int] = ..., load_failures: _Optional[int] = ..., last_error: _Optional[str] = ..., last_error_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pid: _Optional[int] = ..., bundle_source: _Optional[str] = ..., last_fetch_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_fetch_error: _Optional[str] = ..., from_cache: _Optional[bool] = ..., protection: _Optional[_Union[ProtectionStatus, _Mapping]] = ...) -> None: ...

class ProtectionStatus(_message.Message):
    __slots__ = ("state", "mode", "penalties", "fallbacks", "last_error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    PENALTIES_FIELD_NUMBER: _ClassVar[int]
    FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    state: str
    mode: str
    penalties: _containers.RepeatedCompositeFieldContainer[ProtectionPenalty]
    fallbacks: int
    last_error: str
    def __init__(self, state: _Optional[str] = ..., mode: _Optional[str] = ..., penalties: _Optional[_Iterable[_Union[ProtectionPenalty, _Mapping]]] = ..., fallbacks: _Optional[int] = ..., last_error: _Optional[str] = ...) -> None: ...

class ProtectionPenalty(_message.Message):
    __slots__ = ("subject", "action", "detector", "until", "status")
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DETECTOR_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    subject: str
    action: str
    detector: str
    until: _timestamp_pb2.Timestamp
    status: int
    def __init__(self, subject: _Optional[str] = ..., action: _Optional[str] = ..., detector: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[int] = ...) -> None: ...

class PlanResourcesRequest(_message.Message):
    __slots__ = ("principal", "action", "resource_type", "context", "entities", "context_json", "entities_json")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    ENTITIES_JSON_FIELD_NUMBER: _ClassVar[int]
    principal: EntityUid
    action: EntityUid
    resource_type: str
    context: _struct_pb2.Struct
    entities: _containers.RepeatedCompositeFieldContainer[Entity]
    context_json: str
    entities_json: str
    def __init__(self, principal: _Optional[_Union[EntityUid, _Mapping]] = ..., action: _Optional[_Union[EntityUid, _Mapping]] = ..., resource_type: _Optional[str] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., entities: _Optional[_Iterable[_Union[Entity, _Mapping]]] = ..., context_json: _Optional[str] = ..., entities_json: _Optional[str] = ...) -> None: ...

class UnsupportedPart(_message.Message):
    __slots__ = ("policy", "expression", "reason")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    policy: str
    expression: str
    reason: str
    def __init__(self, policy: _Optional[str] = ..., expression: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PlanResourcesResponse(_message.Message):
    __slots__ = ("kind", "condition_json", "policies", "unsupported", "decision_id", "bundle_revision")
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONDITION_JSON_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    UNSUPPORTED_FIELD_NUMBER: _ClassVar[int]
    DECISION_ID_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_REVISION_FIELD_NUMBER: _ClassVar[int]
    kind: PlanKind
    condition_json: str
    policies: _containers.RepeatedScalarFieldContainer[str]
    unsupported: _containers.RepeatedCompositeFieldContainer[UnsupportedPart]
    decision_id: str
    bundle_revision: str
    def __init__(self, kind: _Optional[_Union[PlanKind, str]] = ..., condition_json: _Optional[str] = ..., policies: _Optional[_Iterable[str]] = ..., unsupported: _Optional[_Iterable[_Union[UnsupportedPart, _Mapping]]] = ..., decision_id: _Optional[str] = ..., bundle_revision: _Optional[str] = ...) -> None: ...
