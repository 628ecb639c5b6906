"""sracl_ray.models"""
