"""Video coding pieces for low-delay P-frames: block motion and its entropy coding.

A P-frame is predicted from the previous decoded frame by overlapped block motion compensation
(`motion.predict`, integer arithmetic only, so every decoder computes the same pixels), with a
motion field that the encoder searches (`motion.estimate`) and codes with the residual model's
integer CDF tables (`motion_coding`); the residual image is then coded by an image codec.
"""
