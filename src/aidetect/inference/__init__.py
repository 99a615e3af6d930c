"""The inference engine (core: no Celery, SQL or Tk): :class:`Detector` loads a model
directory once and scores and explains batches; ``verdict`` holds one result, ``views`` the
crop plan and heatmap stitching, ``decoding`` the input decoding."""

from aidetect.inference.decoding import ImageInput
from aidetect.inference.detector import Detector, Prepared
from aidetect.inference.verdict import Verdict
from aidetect.inference.views import (
           CAM_MAX_SIDE,
           ViewPlan,
           cam_canvas_size,
           plan_views,
           stitch,
           tile_grid,
)

__all__ = ["CAM_MAX_SIDE", "Detector", "ImageInput", "Prepared", "Verdict", "ViewPlan", "cam_canvas_size", "plan_views",
           "stitch", "tile_grid"]
