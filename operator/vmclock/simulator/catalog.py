"""The simulated API catalog for one ZStack version: what `@RestRequest`/`@APIParam` declare upstream.

Paths are relative to the context path and start with `/v1` (RestServer registers `API_VERSION + path`).
Versions decide what exists: SetVmClockTrack from 4.1.0, its QGA fields from 4.4.24 (below that they are
unknown fields and silently ignored, as Gson ignores them).
"""

from __future__ import annotations

from vmclock.simulator.config import Features
from vmclock.simulator.handlers import ZStackApis
from vmclock.simulator.model import ApiSpec, Handler, Param
from vmclock.simulator.tracks import QGA_INTERVALS

_RC = "org.zstack.resourceconfig."
_CATEGORY_NAME = (Param("category", mandatory=True), Param("name", mandatory=True))


def _set_vm_clock_track(apis: ZStackApis, features: Features) -> ApiSpec:
    params = [
        Param("uuid", mandatory=True, resource_type="VmInstanceVO"),
        Param("track", mandatory=True, valid_values=("guest", "host")),
    ]
    if features.has_qga_clock_fields:
        params += [
            Param("syncAfterVMResume", "bool"),
            Param("intervalInSeconds", "int", valid_values=QGA_INTERVALS),
        ]
    return ApiSpec(
        "SetVmClockTrack",
        "org.zstack.header.vm.APISetVmClockTrackMsg",
        "PUT",
        "/v1/vm-instances/{uuid}/actions",
        apis.set_vm_clock_track,
        action="setVmClockTrack",
        params=tuple(params),
        is_async=True,
    )


def _reboot_vm_instance(apis: ZStackApis) -> ApiSpec:
    return ApiSpec(
        "RebootVmInstance",
        "org.zstack.header.vm.APIRebootVmInstanceMsg",
        "PUT",
        "/v1/vm-instances/{uuid}/actions",
        apis.reboot_vm_instance,
        action="rebootVmInstance",
        params=(Param("uuid", mandatory=True, resource_type="VmInstanceVO"),),
        is_async=True,
    )


def _queries(apis: ZStackApis) -> list[ApiSpec]:
    def query(name: str, message_class: str, path: str, handler: Handler) -> ApiSpec:
        return ApiSpec(name, message_class, "GET", path, handler, is_query=True)

    return [
        query(
            "QueryVmInstance",
            "org.zstack.header.vm.APIQueryVmInstanceMsg",
            "/v1/vm-instances",
            apis.query_vm_instance,
        ),
        query(
            "QueryVmInstance",
            "org.zstack.header.vm.APIQueryVmInstanceMsg",
            "/v1/vm-instances/{uuid}",
            apis.query_vm_instance,
        ),
        query(
            "QueryResourceConfig",
            _RC + "APIQueryResourceConfigMsg",
            "/v1/resource-configurations",
            apis.query_resource_config,
        ),
        query(
            "QueryGlobalConfig",
            "org.zstack.core.config.APIQueryGlobalConfigMsg",
            "/v1/global-configurations",
            apis.query_global_config,
        ),
        query(
            "QuerySystemTag",
            "org.zstack.header.tag.APIQuerySystemTagMsg",
            "/v1/system-tags",
            apis.query_system_tag,
        ),
        query(
            "QueryUserTag",
            "org.zstack.header.tag.APIQueryUserTagMsg",
            "/v1/user-tags",
            apis.query_user_tag,
        ),
    ]


def _resource_configs(apis: ZStackApis) -> list[ApiSpec]:
    resource_uuid = Param("resourceUuid", mandatory=True, resource_type="ResourceVO")
    return [
        ApiSpec(
            "GetResourceConfig",
            _RC + "APIGetResourceConfigMsg",
            "GET",
            "/v1/resource-configurations/{resourceUuid}/{category}/{name}",
            apis.get_resource_config,
            params=(*_CATEGORY_NAME, resource_uuid),
            interceptor=apis.require_vm_config,
        ),
        ApiSpec(
            "UpdateResourceConfig",
            _RC + "APIUpdateResourceConfigMsg",
            "PUT",
            "/v1/resource-configurations/{category}/{name}/{resourceUuid}/actions",
            apis.update_resource_config,
            action="updateResourceConfig",
            params=(*_CATEGORY_NAME, resource_uuid, Param("value", mandatory=True)),
            is_async=True,
            interceptor=apis.require_vm_config,
        ),
        ApiSpec(
            "DeleteResourceConfig",
            _RC + "APIDeleteResourceConfigMsg",
            "DELETE",
            "/v1/resource-configurations/{category}/{name}/{resourceUuid}",
            apis.delete_resource_config,
            params=(*_CATEGORY_NAME, resource_uuid),
            is_async=True,
            interceptor=apis.require_vm_config,
        ),
    ]


def _identity_and_node(apis: ZStackApis) -> list[ApiSpec]:
    identity = "org.zstack.header.identity."
    return [
        ApiSpec(
            "LogInByAccount",
            identity + "APILogInByAccountMsg",
            "PUT",
            "/v1/accounts/login",
            apis.log_in_by_account,
            action="logInByAccount",
            params=(Param("accountName", mandatory=True), Param("password", mandatory=True)),
            needs_auth=False,
        ),
        ApiSpec(
            "LogOut",
            identity + "APILogOutMsg",
            "DELETE",
            "/v1/accounts/sessions/{sessionUuid}",
            apis.log_out,
            params=(Param("sessionUuid"),),
            needs_auth=False,
        ),
        ApiSpec(
            "ValidateSession",
            identity + "APIValidateSessionMsg",
            "GET",
            "/v1/accounts/sessions/{sessionUuid}/valid",
            apis.validate_session,
            params=(Param("sessionUuid", mandatory=True),),
            needs_auth=False,
        ),
        ApiSpec(
            "GetVersion",
            "org.zstack.header.managementnode.APIGetVersionMsg",
            "PUT",
            "/v1/management-nodes/actions",
            apis.get_version,
            action="getVersion",
            needs_auth=False,
        ),
        ApiSpec(
            "IsReadyToGo",
            "org.zstack.header.apimediator.APIIsReadyToGoMsg",
            "GET",
            "/v1/management-nodes/ready",
            apis.is_ready_to_go,
            needs_auth=False,
        ),
    ]


def build_catalog(apis: ZStackApis, features: Features) -> tuple[list[ApiSpec], list[str]]:
    """The APIs of this version, and the action URLs that many real APIs share: there RestServer picks the
    API by the body's action key and answers 400 "no action mapping" without one, even where none of the
    simulated APIs exist (a pre-4.1.0 SetVmClockTrack gets that 400, not "no api mapping")."""
    catalog = [
        *_identity_and_node(apis),
        *_queries(apis),
        *_resource_configs(apis),
        _reboot_vm_instance(apis),
    ]
    if features.has_set_vm_clock_track:
        catalog.append(_set_vm_clock_track(apis, features))
    return catalog, ["/v1/vm-instances/{uuid}/actions", "/v1/management-nodes/actions"]
