"""The local ROS: apply a ROS template (``template.yml``) to the running local cloud.

:func:`deploy` resolves the template (:mod:`localcloud.ros.template`) and creates each resource
through its local service's public API (:mod:`localcloud.ros.stack`).
"""

from localcloud.ros.stack import Created, deploy
from localcloud.ros.template import RosError

__all__ = ["Created", "RosError", "deploy"]
