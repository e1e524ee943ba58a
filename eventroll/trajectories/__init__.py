"""Recorded episodes as numpy arrays: the flat HDF5 layout and the Minari layout."""

from eventroll.trajectories.flat import FILE_NAME, FlatWriter, TrajectoryFile, open_trajectories
from eventroll.trajectories.record import Trajectory, TrajectoryCollector

__all__ = ["FILE_NAME", "FlatWriter", "Trajectory", "TrajectoryCollector", "TrajectoryFile",
           "open_trajectories"]
