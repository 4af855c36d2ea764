"""The suite's own scheduling (tests/conftest.py): every module's tests carry one xdist group, and
under `--dist loadgroup` (the README's command) the group reaches xdist. conftest's hook must run
before xdist's, which reads the groups into the node ids; in the wrong order every module was
spread over all workers and each built its module fixtures (app servers, Chromium) once per
worker."""

import pytest


def test_this_module_is_one_group(request):
    groups = [m.args[0] for m in request.node.iter_markers("xdist_group")]
    assert groups == [request.module.__name__]


def test_the_group_reaches_xdist(request):
    (group,) = [m.args[0] for m in request.node.iter_markers("xdist_group")]
    if getattr(request.config.option, "loadgroup", False):
        assert request.node.nodeid.endswith(f"@{group}"), request.node.nodeid
    else:  # a plain run: no scheduling, and no suffix
        assert "@" not in request.node.nodeid


@pytest.mark.parametrize("n", [1, 2])
def test_parametrized_tests_share_the_module_group(request, n):
    groups = [m.args[0] for m in request.node.iter_markers("xdist_group")]
    assert groups == [request.module.__name__]
