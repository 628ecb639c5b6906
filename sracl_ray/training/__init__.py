"""sracl_ray.training"""
